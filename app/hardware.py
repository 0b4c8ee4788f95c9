"""The hardware panel: what r1desk found on this computer and what its llama.cpp can use, in plain words."""

from __future__ import annotations

from typing import Any, Callable

from r1desk.app.i18n import translate
from r1desk.app.qt import (
    QDialog,
    QDialogButtonBox,
    QEvent,
    QLabel,
    QObject,
    QScrollArea,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.workers import GeneratorWorker
from r1desk.engine.units import human_bytes


class HardwareProbe(QObject):
    """Detects the hardware once, off the GUI thread, and hands the result to everyone who asks."""

    ready = Signal(object)  # engine.hardware.Hardware
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.hardware: Any = None
        self.error: str | None = None
        self._worker: GeneratorWorker | None = None
        self._waiting: list[Callable[[Any], None]] = []

    def request(self, callback: Callable[[Any], None] | None = None) -> None:
        """Call ``callback(hardware)`` once the hardware is known (at once when it already is)."""
        if self.hardware is not None:
            if callback is not None:
                callback(self.hardware)
            return
        if callback is not None:
            self._waiting.append(callback)
        if self._worker is not None:
            return
        from r1desk.engine.hardware import probe as hardware

        self._worker = GeneratorWorker(hardware.detect)
        self._worker.returned.connect(self._done)
        self._worker.errored.connect(lambda exc: self._fail(str(exc)))
        self._worker.start()

    def set(self, hardware: Any) -> None:
        """Use a described machine instead of this one (screenshots, tests)."""
        self._done(hardware)

    def _done(self, hardware: Any) -> None:
        self.hardware = hardware
        self.error = None
        self._worker = None
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            try:
                callback(hardware)
            except RuntimeError:  # its widget was closed meanwhile
                pass
        self.ready.emit(hardware)

    def _fail(self, message: str) -> None:
        self.error = message
        self._worker = None
        self._waiting = []
        self.failed.emit(message)


_probe: HardwareProbe | None = None


def probe() -> HardwareProbe:
    global _probe
    if _probe is None:
        _probe = HardwareProbe()
    return _probe


def plain_words(hw: Any) -> list[tuple[str, str]]:
    """(heading, text) pairs describing the machine for someone who is not a programmer."""
    rows: list[tuple[str, str]] = []
    cpu = hw.cpu
    text = translate("Hardware", "{name}, {cores} cores ({threads} threads)").format(
        name=cpu.name, cores=cpu.physical_cores, threads=cpu.logical_cores)
    if cpu.flags:
        text += "\n" + translate("Hardware", "Speed-ups llama.cpp uses on it: {flags}").format(flags=", ".join(cpu.flags))
    rows.append((translate("Hardware", "Processor"), text))
    from r1desk.engine.hardware import fit

    memory = translate("Hardware", "{total} in all").format(total=human_bytes(hw.ram_total))
    if hw.ram_available is not None:
        memory += translate("Hardware", ", {free} free right now").format(free=human_bytes(hw.ram_available))
    # The budget every recommendation is judged against (engine.hardware.fit.ram_budget).
    usable_ram = fit.ram_budget(hw, planning=True)
    if usable_ram is not None:
        memory += translate("Hardware", "; a model may use up to {usable} (the rest stays with the system and other "
                                        "programs)").format(usable=human_bytes(usable_ram))
    rows.append((translate("Hardware", "Memory (RAM)"), memory))
    usable = {id(g) for g in hw.usable_gpus()}
    if not hw.gpus:
        rows.append((translate("Hardware", "Graphics card"), translate("Hardware", 
            "None that r1desk can use was found. Models run on the processor and in RAM: "
            "this works, just more slowly than on a graphics card.")))
    for gpu in hw.gpus:
        if gpu.unified:
            size = translate("Hardware", "shares the {total} of RAM; up to {usable} of it can hold a model").format(
                total=human_bytes(gpu.total), usable=human_bytes(gpu.working_set))
        else:
            size = translate("Hardware", "{total} of video memory, {free} free").format(total=human_bytes(gpu.total), free=human_bytes(gpu.free))
            if id(gpu) in usable:
                size += translate("Hardware", "; a model may use up to {usable}").format(
                    usable=human_bytes(fit.gpu_budget(gpu, planning=True)))
        details = [size]
        if gpu.driver:
            details.append(translate("Hardware", "driver {version}").format(version=gpu.driver))
        if gpu.cuda_version:
            details.append(translate("Hardware", "CUDA {version}").format(version=gpu.cuda_version))
        if gpu.compute_capability:
            details.append(translate("Hardware", "compute capability {version}").format(version=gpu.compute_capability))
        verdict = (translate("Hardware", "r1desk can run models on it.") if id(gpu) in usable
                   else translate("Hardware", "Found, but this build of llama.cpp cannot use it (see the note below)."))
        rows.append((translate("Hardware", "Graphics card"), f"{gpu.name}\n" + "; ".join(details) + "\n" + verdict))
    build = hw.build
    if build.gpu_offload:
        engine = translate("Hardware", "Can use: {backends}.").format(backends=", ".join(build.backends))
    else:
        engine = translate("Hardware", "This build runs on the processor only ({backends}).").format(
            backends=", ".join(build.backends) or "CPU")
    if build.version:
        engine += " " + translate("Hardware", "llama-cpp-python {version}.").format(version=build.version)
    rows.append((translate("Hardware", "llama.cpp"), engine))
    for note in hw.notes:
        rows.append((translate("Hardware", "Note"), note))
    return rows


class HardwarePanel(QDialog):
    def __init__(self, parent: QWidget | None = None, hw_probe: HardwareProbe | None = None):
        super().__init__(parent)
        self.setObjectName("HardwarePanel")
        self.setMinimumSize(520, 420)
        self.probe = hw_probe or probe()
        layout = QVBoxLayout(self)
        self.heading = QLabel(self)
        self.heading.setObjectName("Heading")
        layout.addWidget(self.heading)
        self.intro = QLabel(self)
        self.intro.setObjectName("Muted")
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        self.body = QWidget()
        self.rows = QVBoxLayout(self.body)
        self.rows.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll.setWidget(self.body)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        layout.addWidget(buttons)
        self.probe.failed.connect(self._failed)
        self.retranslate()
        self.probe.request(self._show)

    def _clear(self) -> None:
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()

    def _show(self, hw: Any) -> None:
        self._clear()
        for heading, text in plain_words(hw):
            title = QLabel(heading, self.body)
            title.setObjectName("SectionTitle")
            value = QLabel(text, self.body)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.rows.addWidget(title)
            self.rows.addWidget(value)

    def _failed(self, message: str) -> None:
        self._clear()
        label = QLabel(self.tr("The hardware could not be read: {error}").format(error=message), self.body)
        label.setWordWrap(True)
        self.rows.addWidget(label)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("This computer"))
        self.heading.setText(self.tr("What this computer can run"))
        self.intro.setText(self.tr("r1desk looked at the processor, the memory and the graphics cards, "
                                   "and at what its copy of llama.cpp can use."))
        self.close_button.setText(self.tr("Close"))
        if self.probe.hardware is not None:
            self._show(self.probe.hardware)
        elif self.probe.error is None:
            self._clear()
            self.rows.addWidget(QLabel(self.tr("Looking at this computer…"), self.body))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
