"""The Qt half of ``r1desk --self-test``: whether the GUI's parts load on this machine.

The command line never imports Qt, so the self-test runs this module as a child process
(``python -m r1desk.app.qtcheck``, or the bundle's executable with the child flag) on the
platform plugin named by ``QT_QPA_PLATFORM``. It prints one JSON object (the checks, each
``[name, ok, detail]``) and exits non-zero when any check failed. A missing platform plugin
makes Qt abort the process; the parent reports that from the exit status and Qt's message.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def run() -> list[tuple[str, bool, str]]:
    from r1desk.app.qt import QApplication, QFontDatabase, QImage, QLibraryInfo, QTranslator
    from r1desk.app.theme import ICONS, app_icon, icon
    from r1desk.engine import paths

    results: list[tuple[str, bool, str]] = []
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "r1desk"])
    results.append(("platform plugin", True, app.platformName()))

    # The window icon goes through Qt's SVG icon engine plugin; the toolbar icons through QtSvg.
    pixmap = app_icon().pixmap(64, 64)
    drawn = not pixmap.isNull() and _coloured(pixmap.toImage(), QImage)
    results.append(("SVG icons", drawn and not icon("settings").pixmap(20, 20).isNull(),
                    "SVG icons" if drawn else f"{ICONS / 'r1desk.svg'} did not draw (Qt's svg plugins are missing)"))

    families = QFontDatabase.families()
    results.append(("fonts", bool(families), f"{len(families)} font families" if families else
                    "no fonts found (install fontconfig and a font such as DejaVu or Noto)"))

    ours, qts = QTranslator(), QTranslator()
    ours_ok = ours.load("r1desk_zh_CN", str(paths.asset("translations")))
    qt_dir = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
    qts_ok = qts.load("qtbase_zh_CN", qt_dir)
    results.append(("translations", ours_ok and qts_ok,
                    "Chinese translations" if ours_ok and qts_ok else
                    f"missing: {', '.join(n for n, ok in (('r1desk_zh_CN.qm', ours_ok), ('qtbase_zh_CN.qm', qts_ok)) if not ok)}"))

    try:
        from PySide6 import QtPdf, QtPdfWidgets  # noqa: F401 - the documents viewer's PDF pages

        results.append(("PDF viewer", True, "QtPdf"))
    except ImportError:
        # A bundle ships QtPdf; a development install has it only with PySide6-Addons.
        results.append(("PDF viewer", not getattr(sys, "frozen", False), "no QtPdf (PySide6-Addons is not installed)"))
    return results


def _coloured(image: Any, QImage: Any) -> bool:  # noqa: N803
    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    return any(image.pixelColor(x, y).alpha() > 0 for x in range(0, image.width(), 4)
               for y in range(0, image.height(), 4))


def main() -> int:
    results = run()
    print(json.dumps({"checks": results}))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
