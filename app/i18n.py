"""The translation layer: Qt translators for English and Chinese, chosen by the user or the system.

Sources of the translations are ``assets/translations/*.ts`` (Qt Linguist files, refreshed
with ``tools/translations.py update``); the app loads the compiled ``.qm`` files next to them
(``tools/translations.py release``). Code outside a QObject marks its strings with
``translate(context, text)`` so that ``pyside6-lupdate`` finds them.
"""

from __future__ import annotations

from r1desk.app.qt import QCoreApplication, QEvent, QLibraryInfo, QLocale, QTranslator
from r1desk.engine import paths

TRANSLATIONS = paths.asset("translations")

# (setting value, name shown in the language menu: each in its own language, never translated)
LANGUAGES = [("system", None), ("en", "English"), ("zh_CN", "中文")]

_installed: list[QTranslator] = []
_current = "en"


def translate(context: str, text: str, disambiguation: str | None = None, n: int = -1) -> str:
    return QCoreApplication.translate(context, text, disambiguation, n)


def QT_TRANSLATE_NOOP(context: str, text: str) -> str:  # noqa: N802 - the name lupdate looks for
    """Mark a constant for translation; translate it where it is shown."""
    return text


def system_language() -> str:
    """The language r1desk uses when it follows the system: Chinese for any Chinese locale."""
    for name in QLocale.system().uiLanguages():
        lowered = name.lower().replace("-", "_")
        if lowered.startswith("zh"):
            return "zh_CN"
        if lowered.startswith("en"):
            return "en"
    return "en"


def resolve(setting: str | None) -> str:
    if setting in ("en", "zh_CN"):
        return setting
    return system_language()


def current() -> str:
    return _current


def install(setting: str | None) -> str:
    """Install the translators for a language setting; widgets then get a LanguageChange event."""
    global _current
    app = QCoreApplication.instance()
    language = resolve(setting)
    for old in _installed:
        app.removeTranslator(old)
    _installed.clear()
    if language != "en":
        for directory, name in ((TRANSLATIONS, f"r1desk_{language}"),
                                (QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath), f"qtbase_{language}")):
            translator = QTranslator(app)
            if translator.load(name, str(directory)):
                app.installTranslator(translator)
                _installed.append(translator)
    _current = language
    QLocale.setDefault(QLocale("zh_CN" if language == "zh_CN" else "en_US"))
    # Qt posts LanguageChange to every window; deliver it now so the switch is immediate.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.LanguageChange)
    return language
