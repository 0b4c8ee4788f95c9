"""Start the desktop app."""

from __future__ import annotations


def run(argv: list[str]) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    qapp = QApplication.instance() or QApplication(argv)
    label = QLabel("r1desk")
    label.setWindowTitle("r1desk")
    label.resize(480, 320)
    label.show()
    return qapp.exec()
