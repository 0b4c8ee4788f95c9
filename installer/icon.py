"""The app's icon files for each platform, drawn from assets/icons/r1desk.svg with Qt.

    python installer/icon.py OUT_FOLDER

writes r1desk.png (512 px, for Linux launchers that want a bitmap), r1desk.ico (Windows:
16 to 256 px) and r1desk.icns (macOS), so the one SVG stays the only source of the icon.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SVG = Path(__file__).resolve().parents[1] / "assets" / "icons" / "r1desk.svg"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(size: int):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def write_ico(path: Path) -> None:
    """An .ico holding PNG images (Windows Vista and later read them), one per size."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    images = []
    for size in ICO_SIZES:
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        render(size).save(buffer, "PNG")
        images.append((size, bytes(data.data())))
    header = bytearray((0, 0, 1, 0)) + len(images).to_bytes(2, "little")
    offset = 6 + 16 * len(images)
    table, blobs = bytearray(), bytearray()
    for size, png in images:
        edge = 0 if size >= 256 else size  # 0 means 256 in an .ico directory entry
        table += bytes((edge, edge, 0, 0)) + (1).to_bytes(2, "little") + (32).to_bytes(2, "little")
        table += len(png).to_bytes(4, "little") + (offset + len(blobs)).to_bytes(4, "little")
        blobs += png
    path.write_bytes(bytes(header + table + blobs))


def write_icns(path: Path) -> None:
    """An .icns with PNG members (macOS 10.7 and later), 16 to 1024 px."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    members = bytearray()
    for kind, size in ((b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256),
                       (b"ic09", 512), (b"ic10", 1024)):
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        render(size).save(buffer, "PNG")
        png = bytes(data.data())
        members += kind + (8 + len(png)).to_bytes(4, "big") + png
    path.write_bytes(b"icns" + (8 + len(members)).to_bytes(4, "big") + bytes(members))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication([sys.argv[0]])
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    if not render(512).save(str(out / "r1desk.png")):
        raise SystemExit(f"could not write {out / 'r1desk.png'}")
    write_ico(out / "r1desk.ico")
    write_icns(out / "r1desk.icns")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
