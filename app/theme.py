"""Light and dark looks: Qt palette, style sheets from assets/styles, icons from assets/icons."""

from __future__ import annotations

from functools import lru_cache

from r1desk.app import markdown
from r1desk.app.qt import (
    QApplication,
    QByteArray,
    QColor,
    QGuiApplication,
    QIcon,
    QImage,
    QPainter,
    QPalette,
    QPixmap,
    QStyleFactory,
    QSvgRenderer,
    Qt,
)
from r1desk.engine import paths

STYLES = paths.asset("styles")
ICONS = paths.asset("icons")

THEMES = ("system", "light", "dark")

LIGHT = {
    "window": "#ffffff", "panel": "#f4f5f7", "text": "#1d1f24", "muted": "#6b7280",
    "border": "#e2e4e9", "accent": "#3b63f0", "accent_text": "#ffffff", "user_bubble": "#eef2ff",
    "code_bg": "#f6f8fa", "code_border": "#e1e4e8", "thinking": "#6b7280", "link": "#2f55e0",
    "selection": "#cdd9ff", "error": "#cf222e",
    "gpu": "#1a7f37", "partial": "#9a6700", "cpu": "#0550ae", "too_large": "#cf222e",
    "mem_weights": "#3b63f0", "mem_kv": "#f59e0b", "mem_other": "#9ca3af", "mem_free": "#e5e7eb",
}
DARK = {
    "window": "#1f2024", "panel": "#17181b", "text": "#e6e7ea", "muted": "#9aa0aa",
    "border": "#33353b", "accent": "#6d8cff", "accent_text": "#0d1020", "user_bubble": "#2a2f45",
    "code_bg": "#14151a", "code_border": "#2c2f36", "thinking": "#9aa0aa", "link": "#8fa8ff",
    "selection": "#3b4a80", "error": "#ff7b72",
    "gpu": "#3fb950", "partial": "#d29922", "cpu": "#58a6ff", "too_large": "#ff7b72",
    "mem_weights": "#6d8cff", "mem_kv": "#f5b342", "mem_other": "#6b7280", "mem_free": "#2c2f36",
}

_dark = False
_setting: str | None = None
_following = False


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def is_dark() -> bool:
    return _dark


def colors() -> dict[str, str]:
    return DARK if _dark else LIGHT


def color(name: str) -> QColor:
    return QColor(colors()[name])


def _palette(c: dict[str, str]) -> QPalette:
    pal = QPalette()
    window, panel, text = QColor(c["window"]), QColor(c["panel"]), QColor(c["text"])
    muted = QColor(c["muted"])
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.Window, window)
        pal.setColor(group, QPalette.ColorRole.WindowText, text)
        pal.setColor(group, QPalette.ColorRole.Base, window)
        pal.setColor(group, QPalette.ColorRole.AlternateBase, panel)
        pal.setColor(group, QPalette.ColorRole.Text, text)
        pal.setColor(group, QPalette.ColorRole.Button, panel)
        pal.setColor(group, QPalette.ColorRole.ButtonText, text)
        pal.setColor(group, QPalette.ColorRole.ToolTipBase, panel)
        pal.setColor(group, QPalette.ColorRole.ToolTipText, text)
        pal.setColor(group, QPalette.ColorRole.PlaceholderText, muted)
        pal.setColor(group, QPalette.ColorRole.Highlight, QColor(c["selection"]))
        pal.setColor(group, QPalette.ColorRole.HighlightedText, text)
        pal.setColor(group, QPalette.ColorRole.Link, QColor(c["link"]))
        pal.setColor(group, QPalette.ColorRole.Mid, QColor(c["border"]))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, muted)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Base, panel)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Button, panel)
    return pal


def apply(setting: str | None) -> bool:
    """Apply a theme setting ("system", "light" or "dark"); returns whether it is dark."""
    global _dark, _setting, _following
    app = QApplication.instance()
    _setting = setting
    if not _following:
        # "Follow the system" follows it while r1desk runs, too.
        QGuiApplication.styleHints().colorSchemeChanged.connect(_system_changed)
        _following = True
    _dark = system_is_dark() if setting not in ("light", "dark") else setting == "dark"
    if "Fusion" in QStyleFactory.keys() and app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    markdown.set_dark_code(_dark)
    icon.cache_clear()
    app.setPalette(_palette(colors()))
    app.setStyleSheet((STYLES / ("dark.qss" if _dark else "light.qss")).read_text(encoding="utf-8"))
    return _dark


def _system_changed(*_args) -> None:
    if _setting not in ("light", "dark") and system_is_dark() != _dark:
        apply(_setting)


def document_css() -> str:
    """Style sheet for rendered Markdown (Qt's rich text supports a subset of CSS)."""
    c = colors()
    return (
        f"a {{ color: {c['link']}; text-decoration: none; }}"
        f"code {{ background-color: {c['code_bg']}; font-family: monospace; }}"
        f"pre {{ background-color: {c['code_bg']}; font-family: monospace; }}"
        f"blockquote {{ color: {c['muted']}; }}"
        f"th, td {{ border: 1px solid {c['border']}; padding: 4px 6px; }}"
        "table { border-collapse: collapse; margin: 4px 0; }"
        "h1 { font-size: x-large; } h2 { font-size: large; } h3 { font-size: medium; }"
    )


@lru_cache(maxsize=128)
def icon(name: str, role: str = "text") -> QIcon:
    """An icon from assets/icons, drawn in the theme's colour for ``role``."""
    path = ICONS / f"{name}.svg"
    svg = path.read_text(encoding="utf-8").replace("currentColor", colors().get(role, role))
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for size in (16, 20, 24, 32, 48, 64, 128):
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        result.addPixmap(QPixmap.fromImage(image))
    return result


def app_icon() -> QIcon:
    return QIcon(str(ICONS / "r1desk.svg"))
