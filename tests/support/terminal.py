"""Starting a command as a terminal does, for tests that press Ctrl+C.

A test run started in the background (``cmd &``, as CI may be) has SIGINT ignored, its children
inherit that, and Python keeps an inherited ignored SIGINT ignored: Ctrl+C would then never
reach the command under test. ``SIGINT_AS_IN_A_TERMINAL`` is a ``subprocess.Popen`` argument
that gives the child SIGINT's default back, as a terminal's foreground job has it.
"""

from __future__ import annotations

import signal


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SIGINT_AS_IN_A_TERMINAL = {"preexec_fn": _default_sigint}
