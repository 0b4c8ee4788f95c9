"""The bundle's entry script: the same ``r1desk`` entry point as an installed wheel's.

PyInstaller starts the app folder's executable here; ``r1desk.app.entry.main`` then opens the
window, runs a command, or (with the child flag) becomes one of r1desk's child processes.
"""

import sys

from r1desk.app.entry import main

if __name__ == "__main__":
    sys.exit(main())
