"""Choosing a model: the ones on this computer, and recommended downloads with a fit badge, a
small memory picture per device, and one-click download (progress, speed, time left, cancel)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1desk.app import theme
from r1desk.app.errors import user_message
from r1desk.app.hardware import probe
from r1desk.app.i18n import translate
from r1desk.app.qt import (
    QApplication,
    QColor,
    QDialog,
    QEvent,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QObject,
    QPainter,
    QPen,
    QProgressBar,
    QPushButton,
    QRectF,
    QScrollArea,
    QSize,
    QSizePolicy,
    Qt,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.workers import GeneratorWorker
from r1desk.engine.units import human_bytes

log = logging.getLogger(__name__)

FIT_KINDS = ("gpu", "partial", "cpu", "too_large")


def fit_kind(plan: Any) -> str:
    """The badge for an engine.fit.Plan."""
    if plan is None:
        return "unknown"
    if not plan.fits or plan.mode == "no_fit":
        return "too_large"
    return {"gpu": "gpu", "partial": "partial"}.get(plan.mode, "cpu")


def badge_text(kind: str) -> str:
    return {
        "gpu": translate("Fit", "Fits on GPU"),
        "partial": translate("Fit", "Partly on GPU"),
        "cpu": translate("Fit", "CPU only"),
        "too_large": translate("Fit", "Too large"),
    }.get(kind, translate("Fit", "Unknown fit"))


def duration_text(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return translate("Fit", "{s} s").format(s=seconds)
    if seconds < 3600:
        return translate("Fit", "{m} min {s} s").format(m=seconds // 60, s=seconds % 60)
    return translate("Fit", "{h} h {m} min").format(h=seconds // 3600, m=(seconds % 3600) // 60)


def plan_text(plan: Any) -> str:
    """A plan in one translated sentence: where the model goes and how fast it should run."""
    gb = human_bytes
    if plan.mode == "gpu":
        text = translate("Fit", "All {n} layers on the GPU: {gpu} of video memory, {ram} of RAM.").format(
            n=plan.n_layer, gpu=gb(plan.gpu_bytes), ram=gb(plan.ram_bytes))
    elif plan.mode == "partial":
        text = translate("Fit", "{k} of {n} layers on the GPU ({gpu}), the rest in RAM ({ram}).").format(
            k=plan.offloaded_layers, n=plan.n_layer, gpu=gb(plan.gpu_bytes), ram=gb(plan.ram_bytes))
    elif plan.mode == "cpu":
        text = translate("Fit", "On the processor, in RAM: {ram}.").format(ram=gb(plan.ram_bytes))
    else:
        short = [d for d in plan.devices if not d.fits] or plan.devices
        need = sum(d.total for d in short)
        have = sum(d.budget or 0 for d in short)
        # Which budget: this computer's (what to download) or what is free now (loading).
        text = (translate("Fit", "Does not fit: it needs {need}, and {have} can be used.") if plan.planning else
                translate("Fit", "Does not fit right now: it needs {need}, and {have} can be used right now.")
                ).format(need=gb(need), have=gb(have))
    # Above a few hundred tokens/s the figure says nothing a user needs (tiny models).
    if plan.fits and plan.tokens_per_second and plan.tokens_per_second < 500:
        text = translate("Fit", "{plan} About {tps} tokens/s, estimated.").format(
            plan=text, tps=f"{plan.tokens_per_second:.0f}")
    return text


# ---------------------------------------------------------------------------------------
# The memory picture


@dataclass
class DeviceBar:
    name: str
    capacity: int  # what the device has
    budget: int | None  # what the model may use on it
    weights: int
    kv: int
    other: int

    @property
    def need(self) -> int:
        return self.weights + self.kv + self.other


def device_bars(plan: Any, hardware: Any) -> list[DeviceBar]:
    bars = []
    gpus = hardware.usable_gpus() if hardware is not None else []
    for use in plan.devices:
        if use.kind == "cpu":
            capacity = hardware.ram_total if hardware is not None else (use.budget or use.total)
        else:
            index = int(use.device[-1]) if use.device[-1:].isdigit() else 0
            gpu = gpus[index] if index < len(gpus) else None
            capacity = (gpu.working_set or gpu.total) if gpu is not None else (use.budget or use.total)
        bars.append(DeviceBar(use.device, int(capacity or 0), use.budget, use.weights, use.kv,
                              use.compute + use.overhead))
    return bars


class MemoryPicture(QWidget):
    """One bar per device: model weights, context (KV cache) and working memory, against what the
    device has; a tick marks what r1desk lets a model use; red when it does not fit.

    Its height follows its font and its width (the legend wraps), so a layout never squeezes
    the text below it into the legend (``heightForWidth``)."""

    ROW = 18  # at least; taller with a larger font
    LEGEND = 20
    GAP = 4

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bars: list[DeviceBar] = []
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def set_bars(self, bars: list[DeviceBar]) -> None:
        self.bars = bars
        self._tooltip()
        self.updateGeometry()
        self.update()

    def _tooltip(self) -> None:
        lines = []
        for bar in self.bars:
            lines.append(self.tr("{device}: weights {w}, context {kv}, working memory {o}; has {cap}").format(
                device=self._device_name(bar.name), w=human_bytes(bar.weights), kv=human_bytes(bar.kv),
                o=human_bytes(bar.other), cap=human_bytes(bar.capacity)))
        self.setToolTip("\n".join(lines))

    def _device_name(self, name: str) -> str:
        return self.tr("RAM") if name == "CPU" else name

    @staticmethod
    def _figures(bar: DeviceBar) -> str:
        return f"{human_bytes(bar.need)} / {human_bytes(bar.capacity)}"

    # Geometry: one function for the size and for painting --------------------------------
    def _row_height(self) -> int:
        return max(self.ROW, self.fontMetrics().height() + 4)

    def _legend_height(self) -> int:
        return max(self.LEGEND, self.fontMetrics().height() + 6)

    def _columns(self) -> tuple[int, int]:
        """Widths of the device names on the left and of the figures on the right."""
        fm = self.fontMetrics()
        label_w = max([fm.horizontalAdvance(self._device_name(b.name)) for b in self.bars] + [30]) + 8
        figures_w = max([fm.horizontalAdvance(self._figures(b)) for b in self.bars] + [40]) + 8
        return label_w, figures_w

    def _legend(self, width: int) -> list[list[tuple[float, str, str | None]]]:
        """The legend's lines for this width: (x, text, colour; None for the limit tick)."""
        c = theme.colors()
        items: list[tuple[str, str | None]] = [(self.tr("weights"), c["mem_weights"]), (self.tr("context"), c["mem_kv"]),
                                               (self.tr("working memory"), c["mem_other"])]
        if any(bar.budget for bar in self.bars):
            items.append((self.tr("limit r1desk keeps to"), None))
        fm = self.fontMetrics()
        x0 = float(self._columns()[0])
        lines: list[list[tuple[float, str, str | None]]] = [[]]
        x = x0
        for name, colour in items:
            item_w = 11 + fm.horizontalAdvance(name)
            if lines[-1] and x + item_w > width:
                lines.append([])
                x = x0
            lines[-1].append((x, name, colour))
            x += item_w + 14
        return lines

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        rows = max(1, len(self.bars)) * (self._row_height() + self.GAP)
        return rows + len(self._legend(width)) * self._legend_height() + self.GAP

    def _height_now(self) -> int:
        return self.heightForWidth(self.width() if self.width() > 200 else 320)

    def sizeHint(self) -> QSize:  # noqa: N802
        # The height at the present width: the vertical policy is Fixed, so this is also the most
        # a layout gives; windows that size themselves without height-for-width use it too.
        return QSize(320, self._height_now())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(200, self._height_now())

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.height() != self.heightForWidth(self.width()):
            self.updateGeometry()  # the legend wraps differently now: ask the layout again

    def paintEvent(self, _event) -> None:  # noqa: N802
        c = theme.colors()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        row_h, legend_h = self._row_height(), self._legend_height()
        label_w, figures_w = self._columns()
        width = max(self.width() - label_w - figures_w, 10)
        y = 2
        for bar in self.bars:
            painter.setPen(QColor(c["muted"]))
            painter.drawText(QRectF(0, y, label_w, row_h), Qt.AlignmentFlag.AlignVCenter,
                             self._device_name(bar.name))
            scale = max(bar.capacity, bar.need, 1)
            x0 = float(label_w)
            bar_h = 12
            top = y + (row_h - bar_h) / 2
            track = QRectF(x0, top, width, bar_h)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(c["mem_free"]))
            painter.drawRoundedRect(track, 4, 4)
            x = x0
            for amount, colour in ((bar.weights, c["mem_weights"]), (bar.kv, c["mem_kv"]),
                                   (bar.other, c["mem_other"])):
                w = width * amount / scale
                if w > 0:
                    painter.setBrush(QColor(colour))
                    painter.drawRect(QRectF(x, top, w, bar_h))
                    x += w
            fits = bar.budget is None or bar.need <= bar.budget
            if bar.budget:
                bx = x0 + width * min(bar.budget, scale) / scale
                painter.setPen(QPen(QColor(c["text"]), 1.5))
                painter.drawLine(int(bx), int(top - 2), int(bx), int(top + bar_h + 2))
            if not fits:
                painter.setPen(QPen(QColor(c["too_large"]), 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(track, 4, 4)
            painter.setPen(QColor(c["muted"] if fits else c["too_large"]))
            painter.drawText(QRectF(x0 + width + 6, y, figures_w - 6, row_h), Qt.AlignmentFlag.AlignVCenter,
                             self._figures(bar))
            y += row_h + self.GAP
        for line in self._legend(self.width()):
            for lx, name, colour in line:
                middle = y + legend_h / 2
                if colour is None:  # the limit tick
                    painter.setPen(QPen(QColor(c["text"]), 1.5))
                    painter.drawLine(int(lx + 4), int(middle - 6), int(lx + 4), int(middle + 6))
                else:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(QColor(colour))
                    painter.drawRect(QRectF(lx, middle - 4, 8, 8))
                painter.setPen(QColor(c["muted"]))
                painter.drawText(QRectF(lx + 11, y, self.width() - lx - 11, legend_h), Qt.AlignmentFlag.AlignVCenter,
                                 name)
            y += legend_h
        painter.end()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.LanguageChange, QEvent.Type.FontChange):
            self._tooltip()
            self.updateGeometry()
            self.update()
        super().changeEvent(event)


class FitBadge(QLabel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Badge")
        self.kind = "unknown"

    def set_kind(self, kind: str) -> None:
        self.kind = kind
        self.setProperty("fit", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.retranslate()

    def retranslate(self) -> None:
        self.setText(badge_text(self.kind))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# Downloads


class DownloadJob(QObject):
    """One pull (download, verify, register) running in a worker; outlives the dialog that started it."""

    progress = Signal(object)  # engine.events.Progress
    done = Signal(object)  # engine.library.Model
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, repo: str, filename: str | None, label: str, parent: QObject | None = None):
        super().__init__(parent)
        from r1desk.engine.models.download import Pull

        self.repo = repo
        self.filename = filename
        self.label = label
        self.pull = Pull(repo, filename=filename)
        self.last: Any = None
        self.model: Any = None
        self.exc: BaseException | None = None
        self.state = "running"  # running | done | failed | cancelled
        self.worker = GeneratorWorker(self._run, cancel=self.pull.cancel)
        self.worker.yielded.connect(self._progress)
        self.worker.returned.connect(self._done)
        self.worker.errored.connect(self._failed)

    def _run(self):
        yield from self.pull
        return self.pull.model

    def start(self) -> DownloadJob:
        self.worker.start()
        return self

    def cancel(self) -> None:
        self.worker.quit()

    def _progress(self, event: Any) -> None:
        self.last = event
        self.progress.emit(event)

    def _done(self, model: Any) -> None:
        self.state = "done"
        self.model = model
        self.done.emit(model)

    def _failed(self, exc: BaseException) -> None:
        from r1desk.engine.errors import Cancelled

        if isinstance(exc, Cancelled):
            self.state = "cancelled"
            self.cancelled.emit()
            return
        self.state = "failed"
        self.exc = exc
        self.failed.emit(self.error)

    @property
    def error(self) -> str | None:
        """Why it failed, in the current language."""
        return user_message(self.exc) if self.exc is not None else None


class Downloads(QObject):
    """The downloads running now, by (repo, file), shared by the picker and the first-run dialog."""

    started = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: dict[tuple[str, str | None], DownloadJob] = {}

    def get(self, repo: str, filename: str | None) -> DownloadJob | None:
        job = self.jobs.get((repo, filename))
        return job if job is not None and job.state == "running" else None

    def start(self, repo: str, filename: str | None, label: str) -> DownloadJob:
        running = self.get(repo, filename)
        if running is not None:
            return running
        job = DownloadJob(repo, filename, label, self)
        self.jobs[(repo, filename)] = job
        self.started.emit(job)
        return job.start()

    def cancel_all(self) -> None:
        for job in self.jobs.values():
            if job.state == "running":
                job.cancel()


_downloads: Downloads | None = None


def downloads() -> Downloads:
    global _downloads
    if _downloads is None:
        _downloads = Downloads()
    return _downloads


class DownloadRow(QWidget):
    """Progress bar, figures (done of total, speed, time left) and Cancel for one DownloadJob."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(10)
        self.cancel_button = QPushButton(self)
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.figures = QLabel(self)
        self.figures.setObjectName("Muted")
        layout.addWidget(self.figures)
        self.job: DownloadJob | None = None
        self.retranslate()

    def bind(self, job: DownloadJob) -> None:
        self.job = job
        job.progress.connect(self.show_progress)
        if job.last is not None:
            self.show_progress(job.last)
        else:
            self.bar.setRange(0, 0)
            self.figures.setText(self.tr("Starting…"))

    def show_progress(self, event: Any) -> None:
        if event.total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, event.done / event.total)))
            parts = [self.tr("{done} of {total}").format(done=human_bytes(event.done),
                                                         total=human_bytes(event.total))]
            if event.speed:
                parts.append(self.tr("{speed}/s").format(speed=human_bytes(event.speed)))
            left = duration_text(event.eta)
            if left:
                parts.append(self.tr("{time} left").format(time=left))
            self.figures.setText(" · ".join(parts))
        else:
            self.bar.setRange(0, 0)
            self.figures.setText(self.tr("Contacting the download server…"))

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def retranslate(self) -> None:
        self.cancel_button.setText(self.tr("Cancel"))
        if self.job is not None and self.job.last is not None:
            self.show_progress(self.job.last)

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# Cards


def offers(hardware: Any, n_ctx: int = 8192) -> list[Any]:
    """Every catalog model as an engine ``Choice``: the recommended ones ranked first, then those too large here."""
    from r1desk.engine.models import catalog as catalog_mod
    from r1desk.engine.models import recommend

    cat = catalog_mod.load()
    choices = recommend.recommend(hardware, n_ctx, cat)
    chosen = {c.model_id for c in choices}
    for model in cat.models:
        if model.id in chosen or not model.quants:
            continue
        smallest = min(model.quants, key=lambda q: q.size)
        choices.append(recommend.choice_for(model, smallest, hardware, n_ctx))
    return choices


def why_text(choice: Any) -> str:
    """Why a model was recommended, in one translated sentence (the engine gives the facts)."""
    plan = choice.plan
    if choice.tier is None:
        return plan_text(plan)
    tps = plan.tokens_per_second or 0
    speed = (translate("Fit", "about {tps} tokens/s, estimated").format(tps=f"{tps:.0f}") if tps >= 1
             else translate("Fit", "under 1 token/s, estimated"))
    quality = (translate("Fit", "{quant} is below the usual Q4_K_M floor, the most of this model that fits")
               if choice.below_floor else translate("Fit", "{quant} is the best quality that fits")).format(
        quant=choice.quant)
    ctx = f"{choice.n_ctx // 1024}K" if choice.n_ctx >= 1024 else str(choice.n_ctx)
    names = " + ".join(choice.gpu_names)
    slow = choice.tier == "slow"
    if choice.tier == "gpu":
        used = sum(d.total for d in plan.gpus)
        budget = sum(d.budget or 0 for d in plan.gpus)
        text = translate("Fit", "Runs entirely on {gpus} ({used} of {budget} usable with a {ctx} context), {speed}; "
                                "{quality} with room to spare.").format(
            gpus=names, used=human_bytes(used), budget=human_bytes(budget), ctx=ctx, speed=speed, quality=quality)
    elif plan.mode == "partial":
        text = translate("Fit", "{k} of {n} layers on {gpus} ({gpu}), the rest in RAM ({ram}), {speed}; {quality}").format(
            k=plan.offloaded_layers, n=plan.n_layer, gpus=names, gpu=human_bytes(plan.gpu_bytes),
            ram=human_bytes(plan.ram_bytes), speed=speed, quality=quality)
        text += (translate("Fit", "; slow, but nothing faster of this quality fits.") if slow else
                 translate("Fit", "."))
    else:
        where = translate("Fit", "unified memory") if choice.unified_memory else translate("Fit", "RAM")
        text = translate("Fit", "Runs on the processor in {where} ({ram} of {budget} usable), {speed}; {quality}").format(
            where=where, ram=human_bytes(plan.ram_bytes), budget=human_bytes(plan.cpu.budget or 0), speed=speed,
            quality=quality)
        text += translate("Fit", "; slow, but it is what fits.") if slow else translate("Fit", ".")
    if getattr(choice, "ctx_capped", False):
        text = translate("Fit", "{reason} Context capped at {ctx} tokens, the most this model was trained for.").format(
            reason=text, ctx=f"{choice.n_ctx:,}")
    return text


class OfferCard(QFrame):
    """A recommended download: name, size, fit badge, memory picture, why, Download."""

    download_requested = Signal(object)

    def __init__(self, offer: Any, hardware: Any, parent: QWidget | None = None, *, recommended: bool = False):
        super().__init__(parent)
        self.setObjectName("Card")
        self.offer = offer  # an engine Choice
        self.recommended = recommended
        self.setProperty("recommended", recommended)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        top = QHBoxLayout()
        self.title = QLabel(offer.label, self)
        self.title.setObjectName("CardTitle")
        self.badge = FitBadge(self)
        self.badge.set_kind(fit_kind(offer.plan))
        self.star = QLabel(self)
        self.star.setObjectName("Badge")
        self.star.setProperty("fit", "gpu" if recommended else "")
        self.star.setVisible(recommended)
        top.addWidget(self.title)
        top.addWidget(self.badge)
        top.addWidget(self.star)
        top.addStretch(1)
        self.download_button = QPushButton(self)
        self.download_button.setObjectName("Primary")
        self.download_button.setIcon(theme.icon("download", "accent_text"))
        self.download_button.clicked.connect(lambda: self.download_requested.emit(self.offer))
        self.download_button.setEnabled(fit_kind(offer.plan) != "too_large")
        top.addWidget(self.download_button)
        layout.addLayout(top)
        self.facts = QLabel(self)
        self.facts.setObjectName("Muted")
        self.facts.setWordWrap(True)
        layout.addWidget(self.facts)
        self.memory = MemoryPicture(self)
        self.memory.set_bars(device_bars(offer.plan, hardware))
        layout.addWidget(self.memory)
        self.why = QLabel(self)
        self.why.setWordWrap(True)
        layout.addWidget(self.why)
        self.progress = DownloadRow(self)
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        layout.addWidget(self.status)
        self.job: DownloadJob | None = None
        self.retranslate()

    def bind(self, job: DownloadJob) -> None:
        self.job = job
        self.progress.bind(job)
        self.progress.setVisible(True)
        self.download_button.setVisible(False)
        self.status.setVisible(False)
        job.done.connect(self._done)
        job.failed.connect(self._failed)
        job.cancelled.connect(self._cancelled)

    def _finished(self) -> None:
        self.progress.setVisible(False)
        self.download_button.setVisible(True)
        self.status.setVisible(True)

    def _done(self, model: Any) -> None:
        self._finished()
        self.download_button.setVisible(False)
        self._set_status(lambda: self.tr("Downloaded and checked. Loading it…"))

    def _failed(self, _message: str) -> None:
        self._finished()
        job = self.job
        self._set_status(lambda: self.tr("The download failed: {error}").format(error=job.error))

    def _cancelled(self) -> None:
        self._finished()
        self._set_status(lambda: self.tr("Download stopped. Click Download to continue where it stopped."))

    def _set_status(self, words) -> None:
        """The card's status line; ``words`` is called again when the language changes."""
        self._status_words = words
        self.status.setText(words())

    def retranslate(self) -> None:
        offer = self.offer
        size = human_bytes(offer.size)
        facts = [(self.tr("about {size}") if offer.size_estimated else "{size}").format(size=size)]
        if offer.reasoning:
            facts.append(self.tr("thinks before answering"))
        self.facts.setText(" · ".join(facts))
        self.title.setToolTip(self.tr("From {repo}").format(repo=offer.repo))
        self.star.setText(self.tr("Recommended"))
        self.download_button.setText(self.tr("Download"))
        self.why.setText(why_text(offer))
        self.download_button.setToolTip(self.tr("Download {name} ({size}) and load it").format(
            name=offer.label, size=size))
        if getattr(self, "_status_words", None) is not None:
            self.status.setText(self._status_words())

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class LocalModelRow(QFrame):
    """A model already on this computer, with Load."""

    load_requested = Signal(str)

    def __init__(self, model: Any, loaded_path: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Card")
        self.model = model
        self.loaded = loaded_path is not None and _same_file(model.path, loaded_path)
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 8, 14, 8)
        text = QVBoxLayout()
        self.title = QLabel(model.name, self)
        self.title.setObjectName("CardTitle")
        self.facts = QLabel(self)
        self.facts.setObjectName("Muted")
        self.facts.setWordWrap(True)
        text.addWidget(self.title)
        text.addWidget(self.facts)
        row.addLayout(text, 1)
        self.load_button = QPushButton(self)
        self.load_button.setObjectName("Primary")
        self.load_button.clicked.connect(lambda: self.load_requested.emit(self.model.path))
        self.load_button.setEnabled(model.status == "ready" and not self.loaded)
        row.addWidget(self.load_button)
        self.retranslate()

    def retranslate(self) -> None:
        m = self.model
        facts = [x for x in (m.quant, human_bytes(m.size) if m.size else None, m.architecture) if x]
        origins = {"hub": self.tr("downloaded"), "hf": self.tr("Hugging Face cache"),
                   "lmstudio": self.tr("LM Studio"), "ollama": self.tr("Ollama"),
                   "quantized": self.tr("made by r1desk")}
        if m.origin in origins:
            facts.append(origins[m.origin])
        if m.status == "missing":
            facts.append(self.tr("the file is missing"))
        elif m.status == "corrupt":
            facts.append(self.tr("the file is damaged"))
        self.facts.setText(" · ".join(facts) + "\n" + m.path)
        self.load_button.setText(self.tr("Loaded") if self.loaded else self.tr("Load"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


def _same_file(a: str, b: str) -> bool:
    """Library paths may be links (the HF cache); the model host reports the file they point to."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def _scroll_list(parent: QWidget) -> tuple[QScrollArea, QVBoxLayout]:
    scroll = QScrollArea(parent)
    scroll.setWidgetResizable(True)
    body = QWidget()
    layout = QVBoxLayout(body)
    layout.setAlignment(Qt.AlignmentFlag.AlignTop)
    layout.setSpacing(8)
    scroll.setWidget(body)
    return scroll, layout


def _clear(layout: QVBoxLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().hide()
            item.widget().deleteLater()


class ModelPicker(QDialog):
    """Models on this computer, and recommended downloads that fit it."""

    def __init__(self, window: Any):
        super().__init__(window)
        self.window_ = window
        self.setObjectName("ModelPicker")
        self.resize(820, 680)
        self.hardware: Any = None
        self.offers: list[Any] = []
        self.cards: list[OfferCard] = []
        self._offer_worker: GeneratorWorker | None = None
        self._scan_worker: GeneratorWorker | None = None
        layout = QVBoxLayout(self)
        self.heading = QLabel(self)
        self.heading.setObjectName("Heading")
        layout.addWidget(self.heading)
        self.machine = QLabel(self)
        self.machine.setObjectName("Muted")
        self.machine.setWordWrap(True)
        layout.addWidget(self.machine)
        self.tabs = QTabWidget(self)
        layout.addWidget(self.tabs, 1)
        # On this computer
        local = QWidget()
        local_layout = QVBoxLayout(local)
        buttons = QHBoxLayout()
        self.scan_button = QPushButton(local)
        self.scan_button.setIcon(theme.icon("search"))
        self.scan_button.clicked.connect(self.scan)
        self.open_button = QPushButton(local)
        self.open_button.setIcon(theme.icon("folder"))
        self.open_button.clicked.connect(self._open_file)
        self.folder_button = QPushButton(local)
        self.folder_button.setIcon(theme.icon("search"))
        self.folder_button.clicked.connect(self.scan_folder)
        buttons.addWidget(self.scan_button)
        buttons.addWidget(self.folder_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        local_layout.addLayout(buttons)
        self.local_note = QLabel(local)
        self.local_note.setObjectName("Muted")
        self.local_note.setWordWrap(True)
        local_layout.addWidget(self.local_note)
        scroll, self.local_list = _scroll_list(local)
        local_layout.addWidget(scroll, 1)
        self.tabs.addTab(local, "")
        # Downloads
        remote = QWidget()
        remote_layout = QVBoxLayout(remote)
        custom = QHBoxLayout()
        self.repo_edit = QLineEdit(remote)
        self.repo_edit.returnPressed.connect(self._download_custom)
        self.repo_button = QPushButton(remote)
        self.repo_button.clicked.connect(self._download_custom)
        custom.addWidget(self.repo_edit, 1)
        custom.addWidget(self.repo_button)
        remote_layout.addLayout(custom)
        self.custom_progress = DownloadRow(remote)
        self.custom_progress.setVisible(False)
        remote_layout.addWidget(self.custom_progress)
        self.custom_status = QLabel(remote)
        self.custom_status.setWordWrap(True)
        self.custom_status.setVisible(False)
        remote_layout.addWidget(self.custom_status)
        self.offer_scroll, self.offer_list = _scroll_list(remote)
        remote_layout.addWidget(self.offer_scroll, 1)
        self.tabs.addTab(remote, "")
        self.retranslate()
        probe().request(self._hardware_ready)
        # What the picker shows stays true: a model loaded or refused from here or elsewhere.
        window.model_loaded.connect(self._model_changed)
        window.model_load_failed.connect(self._load_failed)

    # Local models ------------------------------------------------------------------------
    def refresh(self) -> None:
        _clear(self.local_list)
        from r1desk.engine.models.library import Library

        # Listing is instant; checking that the files are still there runs in a worker.
        models = Library(self.window_.history.db).list(refresh=False)
        self._check_files()
        loaded = self.window_.chat.loaded
        loaded_path = loaded.path if loaded is not None else None
        for model in models:
            row = LocalModelRow(model, loaded_path, self)
            row.load_requested.connect(self._load)
            self.local_list.addWidget(row)
        self.local_note.setText(
            self.tr("{n} models on this computer.").format(n=len(models)) if models else
            self.tr("No models yet. Download one from the Download tab, look for models other apps "
                    "(LM Studio, Ollama, Hugging Face) already downloaded, or open a GGUF file."))
        if not models:
            self.tabs.setCurrentIndex(1)

    def _check_files(self) -> None:
        if getattr(self, "_check_worker", None) is not None:
            return

        def check():
            from r1desk.engine.db.database import open_db
            from r1desk.engine.models.library import Library

            db = open_db()
            try:
                return Library(db).refresh()
            finally:
                db.conn.close()

        self._check_worker = GeneratorWorker(check)
        self._check_worker.returned.connect(lambda changed: self.refresh() if changed else None)
        self._check_worker.finished.connect(lambda: setattr(self, "_check_worker", None))
        self._check_worker.start()

    def _load(self, path: str) -> None:
        """Load and close: the main window shows the loading, and an error where the user looks."""
        if self.window_.load_model(path) is not None:
            self.hide()
        else:
            self._show_note(self.window_.notice.label.text() or self.tr("A model is loading already."), error=True)

    def _open_file(self) -> None:
        path = self.window_.choose_model_file()
        if path:
            self._load(path)

    def _model_changed(self, _info: Any) -> None:
        if self.isVisible():
            self.refresh()

    def _load_failed(self, message: str) -> None:
        if self.isVisible():
            self.tabs.setCurrentIndex(0)
            self._show_note(message, error=True)

    def _show_note(self, text: str, *, error: bool = False) -> None:
        self.local_note.setText(text)
        self.local_note.setObjectName("MessageNotice" if error else "Muted")
        self.local_note.style().unpolish(self.local_note)
        self.local_note.style().polish(self.local_note)

    def scan(self, folder: str | None = None) -> None:
        """Look for models other apps downloaded (and in ``folder``, when given)."""
        if self._scan_worker is not None:
            return

        def scan_library():
            from r1desk.engine.db.database import open_db
            from r1desk.engine.models.library import Library, default_roots

            db = open_db()
            try:
                return Library(db).scan(default_roots() + ([("local", folder)] if folder else []))
            finally:
                db.conn.close()

        self._scan_worker = GeneratorWorker(scan_library)
        self._scan_worker.returned.connect(self._scanned)
        self._scan_worker.errored.connect(lambda exc: self.local_note.setText(str(exc)))
        self._scan_worker.finished.connect(self._scan_finished)
        self.scan_button.setEnabled(False)
        self.folder_button.setEnabled(False)
        self._show_note(self.tr("Looking for GGUF models on this computer…"))
        self._scan_worker.start()

    def scan_folder(self) -> None:
        from r1desk.app.qt import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, self.tr("Look for GGUF models in a folder"), str(Path.home()))
        if folder:
            self.scan(folder)

    def _scanned(self, report: Any) -> None:
        self.refresh()
        self._scan_report = report
        self._show_note(self._scan_words(report))

    def _scan_words(self, report: Any) -> str:
        names = {"r1desk": self.tr("r1desk's models folder"), "hf": self.tr("the Hugging Face cache"),
                 "lmstudio": self.tr("LM Studio"), "ollama": self.tr("Ollama"), "local": self.tr("the folder you chose")}
        looked = "; ".join(f"{names.get(kind, kind)} ({folder})" for kind, folder in report.roots)
        added = len(report.added)
        found = (self.tr("No new models found.") if added == 0 else self.tr("1 new model found.") if added == 1
                 else self.tr("{n} new models found.").format(n=added))
        text = found + " " + (self.tr("Looked in: {folders}.").format(folders=looked) if looked else
                              self.tr("None of the folders other apps use exist on this computer."))
        if report.missing:
            text += " " + self.tr("{n} listed model(s) are missing: their files were moved or deleted.").format(
                n=len(report.missing))
        if report.skipped:
            text += " " + self.tr("{n} file(s) could not be used.").format(n=len(report.skipped))
        return text

    def _scan_finished(self) -> None:
        self._scan_worker = None
        self.scan_button.setEnabled(True)
        self.folder_button.setEnabled(True)

    # Recommended downloads ---------------------------------------------------------------
    def _hardware_ready(self, hardware: Any) -> None:
        self.hardware = hardware
        self._describe_machine()
        n_ctx = self.window_.settings.get("chat.n_ctx") or 8192
        self._offer_worker = GeneratorWorker(offers, hardware, n_ctx)
        self._offer_worker.returned.connect(self._show_offers)
        self._offer_worker.errored.connect(
            lambda exc: self.offer_list.addWidget(QLabel(self.tr("Recommendations are not available: {error}")
                                                         .format(error=exc))))
        self._offer_worker.start()

    def _show_offers(self, found: list[Any]) -> None:
        self.offers = found
        _clear(self.offer_list)
        self.cards = []
        for i, offer in enumerate(found):
            card = OfferCard(offer, self.hardware, self, recommended=i == 0 and offer.tier is not None)
            card.download_requested.connect(self.download)
            job = downloads().get(offer.repo, offer.files[0] if offer.files else None)
            if job is not None:
                card.bind(job)
            self.offer_list.addWidget(card)
            self.cards.append(card)

    def show_offer(self, card: OfferCard) -> None:
        """Bring a card into view (the list is laid out first, so its place is known)."""
        self.tabs.setCurrentIndex(1)
        for _ in range(3):  # nested layouts settle one level per pass
            QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        self.offer_scroll.ensureWidgetVisible(card, 0, 0)

    def download(self, offer: Any) -> DownloadJob:
        job = downloads().start(offer.repo, offer.files[0] if offer.files else None, offer.label)
        for card in self.cards:
            if card.offer is offer:
                card.bind(job)
        job.done.connect(self._downloaded)
        return job

    def _download_custom(self) -> None:
        spec = self.repo_edit.text().strip()
        if not spec:
            return
        repo, _, name = spec.partition(" ")
        job = downloads().start(repo, name.strip() or None, spec)
        self.custom_progress.bind(job)
        self.custom_progress.setVisible(True)
        self.custom_status.setVisible(False)
        job.done.connect(self._downloaded)
        job.failed.connect(self._custom_failed)
        job.cancelled.connect(lambda: self.custom_progress.setVisible(False))
        job.done.connect(lambda _m: self.custom_progress.setVisible(False))

    def _custom_failed(self, _message: str) -> None:
        self.custom_progress.setVisible(False)
        job = self.custom_progress.job
        self._custom_words = lambda: self.tr("The download failed: {error}").format(error=job.error)
        self.custom_status.setText(self._custom_words())
        self.custom_status.setVisible(True)

    def _downloaded(self, model: Any) -> None:
        self.refresh()
        self.window_.load_model(model.path)

    def _describe_machine(self) -> None:
        hw = self.hardware
        if hw is None:
            self.machine.setText(self.tr("Looking at this computer…"))
            return
        from r1desk.engine.hardware import fit

        gpus = hw.usable_gpus()
        if gpus:
            gpu = ", ".join(f"{g.name} ({human_bytes(g.working_set or g.total)})" for g in gpus)
            text = self.tr("This computer: {ram} of RAM, graphics: {gpu}.").format(
                ram=human_bytes(hw.ram_total), gpu=gpu)
        else:
            text = self.tr("This computer: {ram} of RAM, no graphics card r1desk can use, "
                           "so models run on the processor.").format(ram=human_bytes(hw.ram_total))
        usable = fit.ram_budget(hw, planning=True)
        if usable is not None:
            # The budget the cards' "usable" figures are against.
            text = self.tr("{machine} A model may use up to {usable} of the RAM; the rest stays with the system "
                           "and other programs.").format(machine=text, usable=human_bytes(usable))
        self.machine.setText(text)

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Models"))
        self.heading.setText(self.tr("Choose a model"))
        self.tabs.setTabText(0, self.tr("On this computer"))
        self.tabs.setTabText(1, self.tr("Download"))
        self.scan_button.setText(self.tr("Find models from other apps"))
        self.open_button.setText(self.tr("Open a GGUF file…"))
        self.folder_button.setText(self.tr("Look in a folder…"))
        if getattr(self, "_scan_report", None) is not None and self.local_note.objectName() != "MessageNotice":
            self.local_note.setText(self._scan_words(self._scan_report))
        self.repo_edit.setPlaceholderText(self.tr("Or type a model repository, e.g. bartowski/Qwen_Qwen3-4B-GGUF"))
        self.repo_button.setText(self.tr("Download"))
        if getattr(self, "_custom_words", None) is not None:
            self.custom_status.setText(self._custom_words())
        self._describe_machine()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# The settings dialog's live estimate


_estimates: dict[int, GeneratorWorker] = {}


def request_estimate(window: Any, dialog: Any, n_ctx: Any, n_gpu_layers: Any) -> None:
    """Estimate memory for the loaded (or last) model with these settings; show it in the dialog."""
    info = window.chat.loaded
    path = info.path if info is not None else window.settings.get("app.last_model")
    if not path:
        dialog.show_estimate(translate("SettingsDialog", "Load a model to see how much memory these settings need."))
        return

    def compute(hardware: Any):
        from r1desk.engine.gguf.header import read_header
        from r1desk.engine.hardware import fit
        from r1desk.engine.inference.host import LoadOptions, resolve_options

        header = read_header(path)
        ctx = resolve_options(header, LoadOptions(n_ctx=n_ctx))["n_ctx"]
        return ctx, fit.estimate(header, n_ctx=ctx, hardware=hardware, n_gpu_layers=n_gpu_layers)

    def show(result: Any) -> None:
        ctx, plan = result
        try:
            dialog.show_estimate(translate("SettingsDialog", "With {ctx} tokens of context: {plan}").format(
                ctx=f"{ctx:,}", plan=plan_text(plan)))
        except RuntimeError:  # the dialog was closed meanwhile
            pass

    def start(hardware: Any) -> None:
        worker = GeneratorWorker(compute, hardware)
        worker.returned.connect(show)
        worker.errored.connect(lambda exc: dialog.show_estimate(str(exc)))
        worker.finished.connect(lambda: _estimates.pop(id(worker), None))
        _estimates[id(worker)] = worker
        worker.start()

    probe().request(start)
