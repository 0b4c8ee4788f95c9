"""What the app folder keeps of what PyInstaller finds, for Linux, Windows and macOS (installer/contents.py).

Only the Linux bundle can be built here; these check the recipe's choices for the other
platforms on the entries PyInstaller makes there (their paths as the PySide6 and llama-cpp-python
wheels of each platform lay them out), and on this machine's real libraries where it matters.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "installer"))

import contents  # noqa: E402

LANGUAGES = ["zh_CN"]


def kept(dests: list[str], platform: str) -> set[str]:
    toc = [(d, f"/src/{d}", "BINARY") for d in dests]
    return {d for d, _, _ in contents.keep(toc, platform=platform, languages=LANGUAGES)}


def test_linux_keeps_the_qt_plugins_the_app_uses_and_leaves_the_system_its_own() -> None:
    dests = ["PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/platforms/libqoffscreen.so",
             "PySide6/Qt/plugins/platforms/libqwayland.so", "PySide6/Qt/plugins/platforms/libqeglfs.so",
             "PySide6/Qt/plugins/platforms/libqvnc.so", "PySide6/Qt/plugins/imageformats/libqsvg.so",
             "PySide6/Qt/plugins/imageformats/libqtiff.so", "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
             "PySide6/Qt/plugins/platforminputcontexts/libibusplatforminputcontextplugin.so",
             "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
             "PySide6/Qt/plugins/qmltooling/libqmldbg_debugger.so", "PySide6/Qt/plugins/tls/libqopensslbackend.so",
             "PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so",
             "PySide6/Qt/lib/libQt6Quick.so.6", "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
             "PySide6/Qt/lib/libQt6Pdf.so.6", "PySide6/Qt/lib/libQt6Widgets.so.6",
             "PySide6/Qt/translations/qtbase_zh_CN.qm", "PySide6/Qt/translations/qtbase_de.qm",
             "PySide6/Qt/translations/assistant_zh_CN.qm",
             "libX11.so.6", "libfontconfig.so.1", "libstdc++.so.6", "libglib-2.0.so.0", "libgtk-3.so.0",
             "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0", "libssl.so.3", "libffi.so.8",
             "libgomp.so.1"]
    assert kept(dests, "linux") == {
        "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/platforms/libqwayland.so", "PySide6/Qt/plugins/imageformats/libqsvg.so",
        "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
        "PySide6/Qt/plugins/platforminputcontexts/libibusplatforminputcontextplugin.so",
        "PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so",
        "PySide6/Qt/lib/libQt6Pdf.so.6", "PySide6/Qt/lib/libQt6Widgets.so.6",
        "PySide6/Qt/translations/qtbase_zh_CN.qm",
        "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0", "libssl.so.3", "libffi.so.8",
        "libgomp.so.1"}


def test_windows_keeps_its_platform_plugin_and_native_style() -> None:
    # The Windows PySide6 wheel has no Qt/ level: PySide6/plugins, PySide6/translations, Qt6*.dll beside the modules.
    dests = [r"PySide6\plugins\platforms\qwindows.dll", r"PySide6\plugins\platforms\qoffscreen.dll",
             r"PySide6\plugins\platforms\qdirect2d.dll", r"PySide6\plugins\platforms\qminimal.dll",
             r"PySide6\plugins\styles\qmodernwindowsstyle.dll", r"PySide6\plugins\imageformats\qsvg.dll",
             r"PySide6\plugins\imageformats\qjpeg.dll", r"PySide6\plugins\iconengines\qsvgicon.dll",
             r"PySide6\Qt6Quick.dll", r"PySide6\Qt6Qml.dll", r"PySide6\Qt6Widgets.dll", r"PySide6\Qt6Pdf.dll",
             r"PySide6\translations\qtbase_zh_CN.qm", r"PySide6\translations\qtbase_fr.qm",
             "MSVCP140.dll", "python311.dll"]
    assert kept(dests, "win32") == {
        r"PySide6\plugins\platforms\qwindows.dll", r"PySide6\plugins\platforms\qoffscreen.dll",
        r"PySide6\plugins\styles\qmodernwindowsstyle.dll", r"PySide6\plugins\imageformats\qsvg.dll",
        r"PySide6\plugins\iconengines\qsvgicon.dll", r"PySide6\Qt6Widgets.dll", r"PySide6\Qt6Pdf.dll",
        r"PySide6\translations\qtbase_zh_CN.qm", "MSVCP140.dll", "python311.dll"}


def test_macos_keeps_cocoa_and_its_style_and_leaves_out_quick_frameworks() -> None:
    dests = ["PySide6/Qt/plugins/platforms/libqcocoa.dylib", "PySide6/Qt/plugins/platforms/libqminimal.dylib",
             "PySide6/Qt/plugins/styles/libqmacstyle.dylib", "PySide6/Qt/plugins/imageformats/libqsvg.dylib",
             "PySide6/Qt/plugins/imageformats/libqmacheif.dylib",
             "PySide6/Qt/lib/QtQuick.framework/Versions/A/QtQuick", "PySide6/Qt/lib/QtQml.framework/Versions/A/QtQml",
             "PySide6/Qt/lib/QtWidgets.framework/Versions/A/QtWidgets",
             "PySide6/Qt/lib/QtPdf.framework/Versions/A/QtPdf", "libssl.3.dylib"]
    assert kept(dests, "darwin") == {
        "PySide6/Qt/plugins/platforms/libqcocoa.dylib", "PySide6/Qt/plugins/styles/libqmacstyle.dylib",
        "PySide6/Qt/plugins/imageformats/libqsvg.dylib", "PySide6/Qt/lib/QtWidgets.framework/Versions/A/QtWidgets",
        "PySide6/Qt/lib/QtPdf.framework/Versions/A/QtPdf", "libssl.3.dylib"}


def test_linux_llama_libraries_are_kept_once_under_their_sonames() -> None:
    lib = "llama_cpp/lib/"
    toc = [(lib + n, "/wheel/" + n, "BINARY") for n in (
        "libggml.so", "libggml.so.0", "libggml.so.0.25.3", "libggml-base.so", "libggml-base.so.0",
        "libggml-base.so.0.25.3", "libllama.so", "libllama.so.0", "libllama.so.0.5.0",
        "libggml-cpu-haswell.so", "libggml-cpu-x64.so", "libggml-rpc.so")]
    toc += [("libggml.so.0", "/wheel/libggml.so.0", "BINARY"), ("libggml-base.so.0", "/wheel/x", "BINARY")]
    out = {d: (s, k) for d, s, k in contents.one_llama(toc, platform="linux")}
    assert out == {
        lib + "libggml.so": ("libggml.so.0", "SYMLINK"), lib + "libggml.so.0": ("/wheel/libggml.so.0", "BINARY"),
        lib + "libggml-base.so": ("libggml-base.so.0", "SYMLINK"),
        lib + "libggml-base.so.0": ("/wheel/libggml-base.so.0", "BINARY"),
        lib + "libllama.so": ("libllama.so.0", "SYMLINK"), lib + "libllama.so.0": ("/wheel/libllama.so.0", "BINARY"),
        lib + "libggml-cpu-haswell.so": ("/wheel/libggml-cpu-haswell.so", "BINARY"),
        lib + "libggml-cpu-x64.so": ("/wheel/libggml-cpu-x64.so", "BINARY"),
        lib + "libggml-rpc.so": ("/wheel/libggml-rpc.so", "BINARY")}


def test_windows_llama_libraries_stay_as_they_are_and_lose_the_top_level_copy() -> None:
    toc = [(r"llama_cpp\lib\ggml.dll", "a", "BINARY"), (r"llama_cpp\lib\llama.dll", "b", "BINARY"),
           (r"llama_cpp\lib\ggml-cpu-haswell.dll", "c", "BINARY"), ("ggml.dll", "a", "BINARY")]
    assert [d for d, _, _ in contents.one_llama(toc, platform="win32")] == [
        r"llama_cpp\lib\ggml.dll", r"llama_cpp\lib\llama.dll", r"llama_cpp\lib\ggml-cpu-haswell.dll"]


def test_libraries_only_a_left_out_plugin_needed_go_too() -> None:
    links = {"/s/PySide6/QtGui.abi3.so": ["libQt6Gui.so.6"], "/s/libQt6Gui.so.6": ["libQt6Core.so.6"],
             "/s/libQt6Core.so.6": ["libicuuc.so.73"], "/s/libicuuc.so.73": [],
             "/s/libQt6EglFSDeviceIntegration.so.6": ["libQt6Gui.so.6"], "/s/libjpeg.so.62": [],
             "/s/libpython3.11.so.1.0": []}
    toc = [("PySide6/QtGui.abi3.so", "/s/PySide6/QtGui.abi3.so", "EXTENSION"),
           ("PySide6/Qt/lib/libQt6Gui.so.6", "/s/libQt6Gui.so.6", "BINARY"),
           ("PySide6/Qt/lib/libQt6Core.so.6", "/s/libQt6Core.so.6", "BINARY"),
           ("PySide6/Qt/lib/libicuuc.so.73", "/s/libicuuc.so.73", "BINARY"),
           ("PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6", "/s/libQt6EglFSDeviceIntegration.so.6", "BINARY"),
           ("libQt6EglFSDeviceIntegration.so.6", "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6", "SYMLINK"),
           ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
           ("libjpeg.so.62", "/s/libjpeg.so.62", "BINARY"),
           ("libpython3.11.so.1.0", "/s/libpython3.11.so.1.0", "BINARY")]
    out = contents.needed_only(toc, platform="linux", linked=lambda path: links[path])
    assert [d for d, _, _ in out] == ["PySide6/QtGui.abi3.so", "PySide6/Qt/lib/libQt6Gui.so.6",
                                      "PySide6/Qt/lib/libQt6Core.so.6", "PySide6/Qt/lib/libicuuc.so.73",
                                      "libQt6Core.so.6", "libpython3.11.so.1.0"]
    binaries, datas = contents.no_dangling_links(
        out, [("libQt6EglFSDeviceIntegration.so.6", "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6", "SYMLINK")])
    assert datas == [] and ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK") in binaries


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils)")
def test_readelf_reads_what_a_real_library_links_to() -> None:
    import llama_cpp

    libllama = Path(llama_cpp.__file__).parent / "lib" / "libllama.so"
    needed = contents.readelf_needed(str(libllama))
    assert "libggml.so.0" in needed and "libggml-base.so.0" in needed and "libc.so.6" in needed


def test_the_recipes_parse() -> None:
    for script in ("installer/build", "installer/setup.sh", ".ci/run"):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)
    subprocess.run(["sh", "-n", str(ROOT / "installer" / "linux" / "install.sh")], check=True)
    usage = subprocess.run([str(ROOT / "installer" / "build"), "--help"], capture_output=True, text=True, check=True)
    assert "installer/build --cuda" in usage.stdout
    wrong = subprocess.run([str(ROOT / "installer" / "build"), "--nope"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage: installer/build" in wrong.stderr
    compile((ROOT / "installer" / "r1desk.spec").read_text(), "r1desk.spec", "exec")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_the_desktop_entry_is_valid() -> None:
    done = subprocess.run(["desktop-file-validate", str(ROOT / "installer" / "linux" / "r1desk.desktop")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_the_inno_setup_script_names_what_the_build_makes() -> None:
    iss = (ROOT / "installer" / "windows" / "r1desk.iss").read_text()
    assert r'Source: "{#Root}\dist\r1desk\*"' in iss and r"{app}\r1desk.exe" in iss
    assert r"{#Root}\build\icons\r1desk.ico" in iss and "PrivilegesRequired=lowest" in iss
    build = (ROOT / "installer" / "build").read_text()
    assert "installer/windows/r1desk.iss" in build and "build/icons" in build
    # Every section the script uses is one Inno Setup knows, and every [Code] begin has its end.
    sections = {line.strip() for line in iss.splitlines() if line.startswith("[")}
    assert sections <= {"[Setup]", "[Languages]", "[Tasks]", "[Files]", "[Icons]", "[Run]", "[UninstallDelete]",
                        "[Code]"}, sections
    code = iss.split("[Code]", 1)[1].lower()
    assert code.count("begin") == code.count("end;")
