"""The ``r1desk`` entry point: a command runs headless; no command opens the window."""

from __future__ import annotations

import sys


def launch_gui() -> int:
    from .main import run

    return run(sys.argv[:1])


def main() -> int:
    from engine.commands import main as cli_main

    return cli_main(sys.argv[1:], launch_gui=launch_gui)


if __name__ == "__main__":
    sys.exit(main())
