"""What goes into the app folder: the choices the PyInstaller recipe (r1desk.spec) applies to what it found.

PyInstaller collects every Qt plugin of the Qt modules the app imports, each plugin's libraries,
every system library any of them links to, and llama.cpp's libraries under each of the wheel's
names. These functions keep what the app uses on each platform, as plain functions over
PyInstaller's lists of ``(destination, source, kind)`` entries, so tests can check them for
every platform on any machine (tests/installer/test_contents.py).
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

Entry = tuple[str, str, str]

EXCLUDED_MODULES = [
    # Test-only and development packages.
    "torch", "transformers", "peft", "sentencepiece", "openai", "pytest", "_pytest", "pytestqt",
    "importlinter", "grimp", "tests", "IPython", "matplotlib", "tkinter", "_tkinter",
    # Parts of Qt the app does not use.
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick", "PySide6.QtWebChannel",
    "PySide6.QtWebSockets", "PySide6.QtWebView", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets",
    "PySide6.QtQuickControls2", "PySide6.QtQuick3D", "PySide6.QtQuickTest", "PySide6.Qt3DCore",
    "PySide6.Qt3DRender", "PySide6.Qt3DInput", "PySide6.Qt3DLogic", "PySide6.Qt3DExtras", "PySide6.Qt3DAnimation",
    "PySide6.QtDesigner", "PySide6.QtUiTools", "PySide6.QtHelp", "PySide6.QtTest", "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets", "PySide6.QtCharts", "PySide6.QtDataVisualization", "PySide6.QtGraphs",
    "PySide6.QtSql", "PySide6.QtBluetooth", "PySide6.QtPositioning", "PySide6.QtLocation", "PySide6.QtSensors",
    "PySide6.QtSerialPort", "PySide6.QtTextToSpeech", "PySide6.QtRemoteObjects", "PySide6.QtScxml",
    "PySide6.QtStateMachine", "PySide6.QtNetworkAuth", "PySide6.QtHttpServer", "PySide6.QtSpatialAudio",
    "PySide6.QtOpenGLWidgets", "PySide6.QtConcurrent",
]

# Qt plugins kept, by folder (names without "lib" and suffix; None: the whole folder); every other
# plugin folder is left out.
KEEP_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qxcb", "qoffscreen", "qwayland", "qwindows", "qcocoa"},
    "platformthemes": {"qgtk3", "qxdgdesktopportal"},  # native file dialogs and colours on Linux desktops
    "platforminputcontexts": {"composeplatforminputcontextplugin", "ibusplatforminputcontextplugin"},  # CJK input
    "imageformats": {"qsvg"},  # PNG is built into Qt
    "iconengines": {"qsvgicon"},  # the window icon is an SVG
    "xcbglintegrations": None,
    "wayland-shell-integration": None,
    "wayland-decoration-client": None,
    "wayland-graphics-integration-client": None,
    "styles": {"qmodernwindowsstyle", "qwindowsvistastyle", "qmacstyle"},  # the native look on Windows and macOS
}

# Qt libraries only the left-out modules and plugins need ("Qt6Quick" is libQt6Quick.so.6 on
# Linux, Qt6Quick.dll on Windows, QtQuick.framework on macOS).
DROPPED_QT_LIBRARIES = (
    "Qt6Quick", "Qt6Qml", "Qt6VirtualKeyboard", "Qt6EglFS", "Qt6WebEngine", "Qt63D", "Qt6Designer", "Qt6Multimedia",
    "Qt6ShaderTools", "Qt6Charts", "Qt6Graphs", "Qt6Sql", "Qt6Test", "Qt6Help", "Qt6PdfQuick", "Qt6WaylandCompositor",
    "Qt6Sensors", "Qt6Positioning", "Qt6Location", "Qt6Bluetooth", "Qt6Nfc", "Qt6SerialPort", "Qt6TextToSpeech",
    "Qt6Scxml", "Qt6StateMachine", "Qt6WebChannel", "Qt6WebSockets", "Qt6RemoteObjects", "Qt6Concurrent",
    "Qt6OpenGLWidgets", "Qt6UiTools", "Qt6LabsQml",
)

# Linux: libraries every desktop has, which must come from the system, not from the machine that
# built the bundle: X11 and xcb, OpenGL and Wayland, fonts, GLib, GTK (for the GTK look, a plugin
# Qt skips when GTK is absent), D-Bus, and the C++ runtime (a bundled older one breaks the
# system's GPU drivers, which want the system's). The xcb utility libraries Qt 6 needs
# (libxcb-cursor, -icccm, -keysyms, -image, -render-util) are often missing and stay in.
SYSTEM_LIBRARIES = (
    "libX11.", "libX11-xcb.", "libXau.", "libXdmcp.", "libXext.", "libXrender.", "libXfixes.", "libXi.",
    "libXrandr.", "libXcursor.", "libXinerama.", "libXcomposite.", "libXdamage.", "libxcb.", "libxcb-glx.",
    "libxcb-randr.", "libxcb-render.", "libxcb-shape.", "libxcb-shm.", "libxcb-sync.", "libxcb-xfixes.",
    "libxcb-xkb.", "libxkbcommon.", "libGL", "libEGL.", "libOpenGL.", "libdrm.", "libgbm.", "libwayland-",
    "libfontconfig.", "libfreetype.", "libharfbuzz.", "libgraphite2.", "libpng16.", "libexpat.", "libz.",
    "libglib-2.0.", "libgobject-2.0.", "libgio-2.0.", "libgmodule-2.0.", "libgthread-2.0.", "libpcre2-8.",
    "libgtk-3.", "libgdk-3.", "libgdk_pixbuf-2.0.", "libcairo.", "libcairo-gobject.", "libpango", "libatk",
    "libatspi.", "libepoxy.", "libpixman-1.", "libfribidi.", "libthai.", "libdatrie.", "libdbus-1.",
    "libsystemd.", "libudev.", "libselinux.", "libmount.", "libblkid.", "libcap.", "libgcrypt.", "libgpg-error.",
    "liblz4.", "libbsd.", "libmd.", "libuuid.", "libgssapi_krb5.", "libkrb5.", "libk5crypto.", "libcom_err.",
    "libkeyutils.", "libkrb5support.", "libbrotli", "libstdc++.", "libgcc_s.",
)

LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")


def posix(dest: str) -> str:
    """A destination with forward slashes (PyInstaller writes the platform's separator)."""
    return dest.replace("\\", "/")


def is_library_name(name: str) -> bool:
    return name.endswith(LIBRARY_SUFFIXES) or ".so." in name


def plugin_kept(dest: str) -> bool:
    parts = PurePosixPath(posix(dest)).parts
    if "plugins" not in parts:
        return True
    i = parts.index("plugins")
    if len(parts) < i + 3:
        return True
    folder, name = parts[i + 1], PurePosixPath(parts[-1]).name.split(".")[0]
    if folder not in KEEP_PLUGINS:
        return False
    allowed = KEEP_PLUGINS[folder]
    return allowed is None or name.removeprefix("lib") in allowed


def qt_library_kept(dest: str) -> bool:
    parts = PurePosixPath(posix(dest)).parts
    name = parts[-1].removeprefix("lib")
    if name.startswith(DROPPED_QT_LIBRARIES):
        return False
    frameworks = {"Qt" + n[3:] + ".framework" for n in DROPPED_QT_LIBRARIES}
    return not any(part in frameworks for part in parts)


def translation_kept(dest: str, languages: Iterable[str]) -> bool:
    """Qt's own translations only for the app's languages, and only qtbase (the standard dialogs)."""
    parts = PurePosixPath(posix(dest)).parts
    if "translations" not in parts or "PySide6" not in parts:
        return True
    stem = PurePosixPath(parts[-1]).stem
    return stem.startswith("qtbase_") and stem.split("_", 1)[1] in set(languages)


def system_library(dest: str, platform: str) -> bool:
    return platform.startswith("linux") and "/" not in posix(dest) and dest.startswith(SYSTEM_LIBRARIES)


def keep(toc: Iterable[Entry], *, platform: str, languages: Iterable[str]) -> list[Entry]:
    languages = list(languages)
    return [e for e in toc if plugin_kept(e[0]) and qt_library_kept(e[0]) and translation_kept(e[0], languages)
            and not system_library(e[0], platform)]


def one_llama(toc: Iterable[Entry], *, platform: str) -> list[Entry]:
    """llama.cpp's libraries once each, in llama_cpp/lib.

    The Linux wheel holds each library under three names (libggml.so, .so.0, .so.0.25.3) as
    three files, and PyInstaller adds one more copy at the top of the folder for libllama's
    needs. Two copies of libggml in one process keep two lists of backends, and the backends
    loaded into one are missing from the other; so each library is kept once, under the name
    libllama asks for (its soname), and the name llama-cpp-python loads is a link to it.
    """
    toc = list(toc)
    lib = "llama_cpp/lib/"
    names = {PurePosixPath(posix(d)).name for d, _, _ in toc if posix(d).startswith(lib)}
    kept: list[Entry] = []
    for dest, src, kind in toc:
        name = PurePosixPath(posix(dest)).name
        if "/" not in posix(dest) and name in names:
            continue  # the copy at the top of the folder
        if not posix(dest).startswith(lib) or not platform.startswith("linux"):
            kept.append((dest, src, kind))
            continue
        _stem, dot, version = name.partition(".so.")
        if dot:
            if "." not in version:
                kept.append((dest, src, kind))  # the soname: libggml.so.0
            # libggml.so.0.25.3: nothing asks for the full version
            continue
        sonames = sorted(n for n in names if n.startswith(name + ".") and n.count(".") == 2)
        if name.endswith(".so") and sonames:
            kept.append((dest, sonames[0], "SYMLINK"))  # libggml.so -> libggml.so.0
        else:
            kept.append((dest, src, kind))  # a backend (libggml-cpu-haswell.so) or a library with one name
    return kept


def readelf_needed(path: str) -> list[str]:
    """The libraries a file names itself (DT_NEEDED); ldd would add theirs as well."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    return [line.rsplit("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def needed_only(toc: Iterable[Entry], *, platform: str,
                linked: Callable[[str], list[str]] = readelf_needed) -> list[Entry]:
    """Without the libraries that only left-out plugins and modules needed (Linux).

    PyInstaller gathers every plugin's libraries before the plugins are left out, so whatever no
    kept file links to, directly or through another kept library, goes too.
    """
    toc = list(toc)
    if not platform.startswith("linux"):
        return toc

    def dependency_only(dest: str) -> bool:  # at the top of the folder or in Qt's: there because something links it
        dest = posix(dest)
        return ("/" not in dest or dest.startswith("PySide6/Qt/lib/")) and not dest.startswith("libpython")

    by_name: dict[str, list[Entry]] = {}
    for entry in toc:
        by_name.setdefault(PurePosixPath(posix(entry[0])).name, []).append(entry)
    needed: set[str] = set()
    seen: set[str] = set()
    todo = [e for e in toc if not dependency_only(e[0])]
    while todo:
        dest, src, kind = todo.pop()
        if dest in seen or kind == "SYMLINK" or not is_library_name(PurePosixPath(posix(dest)).name):
            continue
        seen.add(dest)
        for name in linked(src):
            if name not in needed:
                needed.add(name)
                todo.extend(by_name.get(name, []))
    # A link at the top of the folder stands for its target in Qt's folder.
    for dest, src, kind in toc:
        if kind == "SYMLINK" and PurePosixPath(posix(dest)).name in needed:
            needed.add(PurePosixPath(posix(src)).name)
    return [e for e in toc if not dependency_only(e[0]) or PurePosixPath(posix(e[0])).name in needed]


def no_dangling_links(*tocs: list[Entry]) -> list[list[Entry]]:
    """Without links whose target was left out (PyInstaller puts some of them among the data files)."""
    dests = {posixpath.normpath(posix(e[0])) for toc in tocs for e in toc if e[2] != "SYMLINK"}

    def target(entry: Entry) -> str:
        return posixpath.normpath(posixpath.join(posixpath.dirname(posix(entry[0])), posix(entry[1])))

    return [[e for e in toc if e[2] != "SYMLINK" or target(e) in dests] for toc in tocs]


def select(binaries: list[Entry], datas: list[Entry], *, platform: str,
           languages: Iterable[str]) -> tuple[list[Entry], list[Entry]]:
    """Everything above, in order: what the app folder gets."""
    languages = list(languages)
    binaries = needed_only(one_llama(keep(binaries, platform=platform, languages=languages), platform=platform),
                           platform=platform)
    binaries, datas = no_dangling_links(binaries, keep(datas, platform=platform, languages=languages))
    return binaries, datas


def library_files(folder: os.PathLike | str) -> list[str]:
    """The shared libraries directly in ``folder``, by path."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if is_library_name(n) and os.path.isfile(os.path.join(folder, n)))
