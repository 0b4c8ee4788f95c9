"""``python -m r1desk.cli``: the r1desk command line without the GUI."""

import sys

from r1desk.cli import main

sys.exit(main())
