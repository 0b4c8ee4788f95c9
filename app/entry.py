"""The ``r1desk`` entry point: a command runs headless; no command opens the window.

In a frozen bundle the same executable also starts r1desk's child processes (the model
process, the quantiser): see ``engine.processes``.
"""

from __future__ import annotations

import multiprocessing
import sys


def launch_gui() -> int:
    from r1desk.app.main import run

    return run(sys.argv[:1])


def main() -> int:
    multiprocessing.freeze_support()  # a frozen app's multiprocessing children start here
    from r1desk.engine.processes import run_child

    if run_child(sys.argv):
        return 0
    from r1desk.cli import main as cli_main

    return cli_main(sys.argv[1:], launch_gui=launch_gui)


if __name__ == "__main__":
    sys.exit(main())
