"""The About box: which r1desk this is, the llama.cpp build it runs and its CPU kernels, where the data lives.

What a user is asked for when something goes wrong, in one place, with a button that copies it.
The llama.cpp figures come from the hardware probe (a short-lived child process: the GUI never
loads llama.cpp itself), so they appear a moment after the box opens.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

from r1desk.app import theme
from r1desk.app.hardware import HardwareProbe, probe
from r1desk.app.i18n import translate
from r1desk.app.qt import (
    QT_VERSION,
    QDesktopServices,
    QDialog,
    QDialogButtonBox,
    QEvent,
    QFormLayout,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSize,
    Qt,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
)


def version() -> str:
    try:
        return metadata.version("r1desk")
    except metadata.PackageNotFoundError:
        return "unknown"


def kernels_text(build: Any) -> str:
    """The llama.cpp build in three lines: version, CPU kernels, backends."""
    features = ", ".join(f for f in build.cpu_features if f not in ("OPENMP", "REPACK", "LLAMAFILE"))
    if build.cpu_variants and build.cpu_variant in build.cpu_variants:
        kernels = translate("AboutDialog", "CPU kernels: {variant} ({features}), chosen for this "
                           "processor from {count} variants").format(
            variant=build.cpu_variant, features=features, count=len(build.cpu_variants))
    elif build.cpu_variant:
        kernels = translate("AboutDialog", "CPU kernels: {variant}").format(variant=build.cpu_variant)
    else:
        kernels = translate("AboutDialog", "CPU kernels built for {features}").format(features=features)
    backends = translate("AboutDialog", "Backends: {backends}").format(backends=", ".join(build.backends) or "-")
    return "\n".join((f"llama-cpp-python {build.version or '?'}", kernels, backends))


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, hw_probe: HardwareProbe | None = None):
        super().__init__(parent)
        from r1desk.engine import paths

        self.setObjectName("AboutDialog")
        self.data_folder = str(paths.home())
        self.hardware: Any = None
        self.error: str | None = None

        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        self.logo = QLabel(self)
        self.logo.setPixmap(theme.app_icon().pixmap(64, 64))
        head.addWidget(self.logo, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        self.name = QLabel("r1desk", self)
        self.name.setObjectName("AboutName")
        font = self.name.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.name.setFont(font)
        self.version = QLabel(self)
        self.tagline = QLabel(self)
        self.tagline.setWordWrap(True)
        for label in (self.name, self.version, self.tagline):
            titles.addWidget(label)
        head.addLayout(titles, 1)
        layout.addLayout(head)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.llama_label, self.llama = QLabel(self), QLabel(self)
        self.folder_label, self.folder = QLabel(self), QLabel(self.data_folder, self)
        self.qt_label, self.qt = QLabel(self), QLabel(self)
        for value in (self.llama, self.folder, self.qt):
            value.setWordWrap(True)
            value.setMinimumWidth(400)  # a wrapped label is otherwise laid out narrower than the box
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        self.open_folder = QPushButton(self)
        self.open_folder.clicked.connect(self.show_data_folder)
        folder_row.addWidget(self.open_folder)
        form.addRow(self.llama_label, self.llama)
        form.addRow(self.folder_label, folder_row)
        form.addRow(self.qt_label, self.qt)
        layout.addLayout(form)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = buttons.addButton("", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_details)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(560)
        self.retranslate()
        hw_probe = hw_probe or probe()
        hw_probe.failed.connect(self._failed)
        hw_probe.request(self._hardware_ready)

    def _hardware_ready(self, hardware: Any) -> None:
        self.hardware = hardware
        self.retranslate()
        self.adjustSize()  # the new lines need room

    def _failed(self, message: str) -> None:
        self.error = message
        self.retranslate()
        self.adjustSize()

    def details(self) -> str:
        """Everything the box shows, as plain text (what "Copy" puts on the clipboard)."""
        lines = [f"r1desk {version()}" + (" (app bundle)" if getattr(sys, "frozen", False) else ""),
                 f"{platform.system()} {platform.release()} {platform.machine()}, Python {platform.python_version()}",
                 f"llama.cpp: {self.llama.text().replace(chr(10), '; ')}", f"Data folder: {self.data_folder}",
                 f"Qt: {self.qt.text()}"]
        return "\n".join(lines)

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.details())

    def show_data_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.data_folder))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("About r1desk"))
        self.version.setText(self.tr("Version {version}").format(version=version()))
        self.tagline.setText(self.tr("Runs DeepSeek-R1 and other GGUF models on this computer. "
                                     "Nothing leaves it."))
        self.llama_label.setText(self.tr("llama.cpp"))
        if self.hardware is not None:
            self.llama.setText(kernels_text(self.hardware.build))
        elif self.error:
            self.llama.setText(self.tr("could not be asked: {error}").format(error=self.error))
        else:
            self.llama.setText(self.tr("Looking…"))
        self.folder_label.setText(self.tr("Data folder"))
        self.open_folder.setText(self.tr("Open"))
        self.qt_label.setText(self.tr("Qt"))
        self.qt.setText(f"Qt {QT_VERSION}, {QGuiApplication.platformName()}")
        self.copy_button.setText(self.tr("Copy details"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class AboutButton(QToolButton):
    """The top bar's button that opens the About box (one box, raised when open already)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("AboutButton")
        self.setIconSize(QSize(20, 20))
        self.dialog: AboutDialog | None = None
        self.clicked.connect(self.show_about)
        self.retranslate()

    def show_about(self) -> AboutDialog:
        if self.dialog is None:
            self.dialog = AboutDialog(self.window())
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def retranslate(self) -> None:
        self.setIcon(theme.icon("about"))
        self.setToolTip(self.tr("About r1desk: version, llama.cpp build, data folder"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.LanguageChange, QEvent.Type.PaletteChange):
            self.retranslate()
        super().changeEvent(event)
