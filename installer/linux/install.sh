#!/bin/sh
# Install r1desk for this user from the unpacked app folder, or remove it again.
#
#   ./install.sh               copy the folder to ~/.local/opt/r1desk and add r1desk to the
#                              applications menu and to ~/.local/bin
#   ./install.sh --uninstall   remove those again (your conversations and models stay in
#                              ~/.local/share/r1desk; delete that folder to remove them too)
#
# Nothing outside your home folder is touched, and no administrator rights are needed.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
target="$HOME/.local/opt/r1desk"
bin="$HOME/.local/bin"
desktop="$data/applications/r1desk.desktop"
icon="$data/icons/hicolor/scalable/apps/r1desk.svg"
icon_png="$data/icons/hicolor/512x512/apps/r1desk.png"

refresh_menus() {
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$data/applications" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$desktop" "$icon" "$icon_png"
    [ -L "$bin/r1desk" ] && rm -f "$bin/r1desk"
    rm -rf "$target"
    refresh_menus
    echo "r1desk is removed. Your conversations, settings and models are still in $data/r1desk"
    echo "and ~/.config/r1desk; delete those folders to remove them too."
    exit 0
fi

if [ ! -x "$here/r1desk" ]; then
    echo "install.sh must stay inside the unpacked r1desk folder (next to the r1desk program)" >&2
    exit 1
fi
if [ "$here" != "$target" ]; then
    rm -rf "$target.new"
    mkdir -p "$(dirname "$target")"
    cp -a "$here" "$target.new"
    rm -rf "$target"
    mv "$target.new" "$target"
fi
mkdir -p "$bin" "$(dirname "$desktop")" "$(dirname "$icon")" "$(dirname "$icon_png")"
ln -sf "$target/r1desk" "$bin/r1desk"
cp "$target/share/r1desk.svg" "$icon"
cp "$target/share/r1desk.png" "$icon_png"
sed "s|^Exec=.*|Exec=\"$target/r1desk\"|" "$target/share/r1desk.desktop" > "$desktop"
chmod 644 "$desktop"
refresh_menus
echo "r1desk is installed in $target: open it from the applications menu, or run r1desk."
case ":$PATH:" in *":$bin:"*) ;; *) echo "($bin is not on your PATH; the menu entry works without it.)" ;; esac
