"""Keep the GUI's translations in step with its code, with Qt's own tools (shipped in PySide6).

    .venv/bin/python tools/translations.py update    # pyside6-lupdate: app/*.py -> assets/translations/*.ts
    .venv/bin/python tools/translations.py release   # pyside6-lrelease: *.ts -> *.qm (what the app loads)
    .venv/bin/python tools/translations.py check     # fail if a string is untranslated or a .qm is stale

Translators edit the .ts files (Qt Linguist: ``pyside6-linguist``); ``update`` keeps their work and
marks strings that changed in the code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "app").glob("*.py"))
TRANSLATIONS = ROOT / "assets" / "translations"
LANGUAGES = ["zh_CN"]


def tool(name: str) -> Path:
    """lupdate/lrelease as shipped inside the PySide6 wheel."""
    import PySide6

    path = Path(PySide6.__file__).resolve().parent / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: install PySide6-Essentials")
    return path


def ts_path(language: str) -> Path:
    return TRANSLATIONS / f"r1desk_{language}.ts"


def qm_path(language: str) -> Path:
    return TRANSLATIONS / f"r1desk_{language}.qm"


def update(*, into: Path | None = None, language: str = "zh_CN") -> Path:
    target = into or ts_path(language)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(tool("lupdate")), "-no-obsolete", "-locations", "none", "-target-language", language,
                    *map(str, SOURCES), "-ts", str(target)], check=True, capture_output=into is not None)
    return target


def release(language: str = "zh_CN", *, into: Path | None = None) -> Path:
    target = into or qm_path(language)
    subprocess.run([str(tool("lrelease")), "-silent", str(ts_path(language)), "-qm", str(target)], check=True)
    return target


def messages(ts: Path) -> dict[tuple[str, str], ET.Element]:
    out = {}
    for context in ET.parse(ts).getroot().iter("context"):
        name = context.findtext("name")
        for message in context.iter("message"):
            out[(name, message.findtext("source"))] = message.find("translation")
    return out


def problems(language: str = "zh_CN") -> list[str]:
    """Strings in the code missing from the .ts, untranslated ones, and a .qm older than its .ts."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = update(into=Path(tmp) / "fresh.ts", language=language)
        in_code = set(messages(fresh))
        compiled = release(language, into=Path(tmp) / "fresh.qm").read_bytes()
    stored = messages(ts_path(language))
    for key in sorted(in_code - set(stored)):
        found.append(f"not in {ts_path(language).name}: {key[0]}: {key[1]!r}")
    for key, translation in stored.items():
        if key not in in_code:
            continue
        text = "".join(translation.itertext()) if translation is not None else ""
        if translation is None or translation.get("type") in ("unfinished", "vanished", "obsolete") or not text.strip():
            found.append(f"untranslated: {key[0]}: {key[1]!r}")
    qm = qm_path(language)
    if not qm.exists() or qm.read_bytes() != compiled:
        found.append(f"{qm.name} does not match its .ts: run `tools/translations.py release`")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["update", "release", "check"])
    args = parser.parse_args()
    for language in LANGUAGES:
        if args.command == "update":
            print(update(language=language))
        elif args.command == "release":
            print(release(language))
        else:
            issues = problems(language)
            for issue in issues:
                print(issue)
            if issues:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
