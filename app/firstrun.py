"""The first start: what this computer is, the DeepSeek-R1 distill that suits it, one Download button.

When the download server cannot be reached it says so, and offers the GGUF models already on
this computer (other apps' downloads included) or a file chooser instead.
"""

from __future__ import annotations

from typing import Any

from r1desk.app.hardware import plain_words, probe
from r1desk.app.i18n import translate
from r1desk.app.modelpicker import LocalModelRow, OfferCard, downloads, offers
from r1desk.app.qt import (
    QDialog,
    QEvent,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from r1desk.app.workers import GeneratorWorker


def recommended_r1(found: list[Any]) -> Any | None:
    """The best-ranked DeepSeek-R1 model that fits (offers come ranked, best first)."""
    fitting = [o for o in found if o.plan is not None and o.plan.fits]
    return next((o for o in fitting if o.reasoning and "r1" in o.model_id.lower()), fitting[0] if fitting else None)


def check_hub(repo: str) -> Any:
    """Ask the download server about the recommended repo (an engine call; raises Offline)."""
    from r1desk.engine.models.download import list_repo

    return list_repo(repo)


def local_models() -> list[Any]:
    """Look for GGUF files other apps left on this computer, then list every usable model."""
    from r1desk.engine.db.database import open_db
    from r1desk.engine.models.library import Library

    db = open_db()
    try:
        library = Library(db)
        library.scan()
        return [m for m in library.list(refresh=False) if m.status == "ready"]
    finally:
        db.conn.close()


class FirstRunDialog(QDialog):
    def __init__(self, window: Any):
        super().__init__(window)
        self.window_ = window
        self.setObjectName("FirstRun")
        self.setMinimumWidth(720)
        self.offer: Any | None = None  # an engine Choice
        self.card: OfferCard | None = None
        self.hub_state = "checking"  # checking | ok | offline
        self.hub_error: str | None = None
        self.local_rows: list[LocalModelRow] = []
        self._workers: list[GeneratorWorker] = []
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        # The minimum size is kept by _keep_everything_visible (height for the present width).
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.heading = QLabel(self)
        self.heading.setObjectName("Heading")
        self.intro = QLabel(self)
        self.intro.setWordWrap(True)
        layout.addWidget(self.heading)
        layout.addWidget(self.intro)
        self.machine_title = QLabel(self)
        self.machine_title.setObjectName("SectionTitle")
        self.machine = QLabel(self)
        self.machine.setWordWrap(True)
        layout.addWidget(self.machine_title)
        layout.addWidget(self.machine)
        self.offer_title = QLabel(self)
        self.offer_title.setObjectName("SectionTitle")
        layout.addWidget(self.offer_title)
        self.card_holder = QVBoxLayout()
        layout.addLayout(self.card_holder)
        self.hub_label = QLabel(self)
        self.hub_label.setWordWrap(True)
        self.hub_label.setObjectName("Muted")
        layout.addWidget(self.hub_label)
        self.local_box = QWidget(self)
        self.local_layout = QVBoxLayout(self.local_box)
        self.local_layout.setContentsMargins(0, 0, 0, 0)
        self.local_box.setVisible(False)
        layout.addWidget(self.local_box)
        buttons = QHBoxLayout()
        self.file_button = QPushButton(self)
        self.file_button.clicked.connect(self._choose_file)
        self.settings_button = QPushButton(self)
        self.settings_button.clicked.connect(window.show_settings)
        self.settings_button.setVisible(False)
        self.later_button = QPushButton(self)
        self.later_button.clicked.connect(self.reject)
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.settings_button)
        buttons.addStretch(1)
        buttons.addWidget(self.later_button)
        layout.addLayout(buttons)
        self.retranslate()
        probe().request(self._hardware_ready)

    def _run(self, func, *args, on_result=None, on_error=None) -> GeneratorWorker:
        worker = GeneratorWorker(func, *args)
        if on_result is not None:
            worker.returned.connect(on_result)
        if on_error is not None:
            worker.errored.connect(on_error)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)
        self._workers.append(worker)
        worker.start()
        return worker

    # Size --------------------------------------------------------------------------------
    def _keep_everything_visible(self) -> None:
        """At least as tall as the wrapped text needs at the present width.

        Qt sizes a window by its layout's minimum, which ignores height-for-width: with the
        hub's sentence growing to two lines after the dialog was sized, the card was squeezed
        and its reason drawn over the memory picture's legend.
        """
        layout = self.layout()
        if layout is None:
            return
        need = (layout.totalHeightForWidth(self.width()) if layout.hasHeightForWidth()
                else layout.totalMinimumSize().height())
        width = max(720, layout.totalMinimumSize().width())
        if (self.minimumWidth(), self.minimumHeight()) != (width, need):
            self.setMinimumSize(width, need)

    def event(self, event) -> bool:
        handled = super().event(event)
        if event.type() == QEvent.Type.LayoutRequest:
            self._keep_everything_visible()
        return handled

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._keep_everything_visible()

    # Steps -------------------------------------------------------------------------------
    def _hardware_ready(self, hardware: Any) -> None:
        self.hardware = hardware
        self._describe_machine()
        self._run(offers, hardware, self.window_.settings.get("chat.n_ctx") or 8192,
                  on_result=self._offers_ready, on_error=lambda exc: self._no_offer(str(exc)))

    def _offers_ready(self, found: list[Any]) -> None:
        self.offer = recommended_r1(found)
        if self.offer is None:
            self._no_offer(self.tr("no catalog model fits this computer"))
            return
        self.card = OfferCard(self.offer, self.hardware, self, recommended=True)
        self.card.download_requested.connect(self.download)
        running = downloads().get(self.offer.repo, self.offer.files[0] if self.offer.files else None)
        if running is not None:
            self.card.bind(running)
        self.card_holder.addWidget(self.card)
        self.card.download_button.setEnabled(False)  # until the server answers
        self.adjustSize()
        self._run(check_hub, self.offer.repo, on_result=self._hub_ok, on_error=self._hub_failed)

    def _no_offer(self, reason: str) -> None:
        self.hub_label.setText(self.tr("No recommendation is available ({reason}).").format(reason=reason))
        self._offer_local()

    def _hub_ok(self, _listing: Any) -> None:
        self.hub_state = "ok"
        self.retranslate()
        if self.card is not None:
            self.card.download_button.setEnabled(True)

    def _hub_failed(self, exc: BaseException) -> None:
        self.hub_state = "offline"
        self.hub_error = str(exc)
        self.retranslate()
        self.settings_button.setVisible(True)
        self._offer_local()
        self.adjustSize()

    def _offer_local(self) -> None:
        self.local_box.setVisible(True)
        self._run(local_models, on_result=self._local_ready,
                  on_error=lambda exc: self._local_ready([]))

    def _local_ready(self, models: list[Any]) -> None:
        while self.local_layout.count():
            item = self.local_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()
        self.local_rows = []
        self.local_title = QLabel(self.local_box)
        self.local_title.setObjectName("SectionTitle")
        self.local_layout.addWidget(self.local_title)
        for model in models[:6]:
            row = LocalModelRow(model, None, self.local_box)
            row.load_button.setText(self.tr("Use this model"))
            row.load_requested.connect(self._use)
            self.local_layout.addWidget(row)
            self.local_rows.append(row)
        self._local_count = len(models)
        self.retranslate()
        self.adjustSize()

    def download(self, offer: Any) -> None:
        job = downloads().start(offer.repo, offer.files[0] if offer.files else None, offer.label)
        self.card.bind(job)
        job.done.connect(self._downloaded)

    def _downloaded(self, model: Any) -> None:
        self._use(model.path)

    def _use(self, path: str) -> None:
        self.window_.settings.set("app.first_run_done", True)
        self.window_.load_model(path)
        self.accept()

    def _choose_file(self) -> None:
        self.window_.settings.set("app.first_run_done", True)
        self.accept()
        self.window_.open_model_file()

    def reject(self) -> None:
        self.window_.settings.set("app.first_run_done", True)
        super().reject()

    # Words -------------------------------------------------------------------------------
    def _describe_machine(self) -> None:
        hw = getattr(self, "hardware", None)
        if hw is None:
            self.machine.setText(self.tr("Looking at this computer…"))
            return
        rows = plain_words(hw)
        wanted = (translate("Hardware", "Processor"), translate("Hardware", "Memory (RAM)"),
                  translate("Hardware", "Graphics card"))
        keep = [r for r in rows if r[0] in wanted]
        self.machine.setText("\n".join(f"{heading}: {text.splitlines()[0]}" for heading, text in keep))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Welcome to r1desk"))
        self.heading.setText(self.tr("Welcome to r1desk"))
        self.intro.setText(self.tr(
            "r1desk runs AI models on this computer: what you type never leaves it. "
            "To start, it needs one model. Here is the one that suits this computer best."))
        self.machine_title.setText(self.tr("This computer"))
        self.offer_title.setText(self.tr("Recommended for you"))
        self._describe_machine()
        if self.hub_state == "checking":
            self.hub_label.setText(self.tr("Checking that the download server can be reached…"))
        elif self.hub_state == "ok":
            self.hub_label.setText(self.tr("The download is checked against the server's fingerprint "
                                           "before it is used. It can be stopped and continued later."))
        else:
            self.hub_label.setText(self.tr(
                "The download server cannot be reached from this computer ({error}). If huggingface.co is "
                "blocked where you are, set a mirror such as hf-mirror.com in Settings. Or use a model "
                "that is already on this computer:").format(error=self.hub_error or ""))
        if hasattr(self, "local_title"):
            count = getattr(self, "_local_count", 0)
            self.local_title.setText(
                self.tr("Models found on this computer") if count else
                self.tr("No GGUF models were found on this computer. Choose a file if you have one."))
        self.file_button.setText(self.tr("Choose a GGUF file…"))
        self.settings_button.setText(self.tr("Open Settings"))
        self.later_button.setText(self.tr("Later"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
