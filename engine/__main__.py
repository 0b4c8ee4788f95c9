"""``python -m engine``: the r1desk command line without the GUI."""

import sys

from .commands import main

sys.exit(main())
