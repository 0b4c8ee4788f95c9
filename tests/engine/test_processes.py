"""What a child process is handed: its end of a channel and the descriptors named, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from r1desk.engine.processes import Handover, channel, lifeline

CHILD = textwrap.dedent("""
    import os, sys
    from r1desk.engine.processes import connection_from_parent, fd_from_parent
    conn = connection_from_parent(sys.argv[1])
    data = os.read(fd_from_parent(sys.argv[2]), 100)
    question = conn.recv()
    conn.send((question * 2, data))
    try:
        os.fstat(int(sys.argv[3]))
        conn.send("leaked")
    except OSError:
        conn.send("not inherited")
""")


def test_a_child_gets_its_channel_and_the_descriptors_handed_over_only() -> None:
    mine, theirs = channel()
    read_fd, write_fd = os.pipe()
    secret_read, secret_write = os.pipe()
    # Inheritable, but not handed over: it must not reach the child (a high number the child's
    # own files will not take).
    os.dup2(secret_read, 250)
    os.close(secret_read)
    secret_read = 250
    os.write(write_fd, b"through the pipe")
    given = Handover()
    child = subprocess.Popen([sys.executable, "-c", CHILD, given.connection(theirs), given.fd(read_fd),
                              str(secret_read)], stdin=subprocess.DEVNULL, **given.popen_kwargs())
    theirs.close()
    os.close(read_fd)
    try:
        mine.send("ab")
        assert mine.recv() == ("abab", b"through the pipe")
        assert mine.recv() == "not inherited"
        assert child.wait(60) == 0
        # The child is gone and nothing else holds its end: this side sees the channel close.
        assert mine.poll(10)
        try:
            mine.recv()
            closed = False
        except EOFError:
            closed = True
        assert closed
    finally:
        child.kill()
        mine.close()
        for fd in (write_fd, secret_read, secret_write):
            os.close(fd)


def test_the_lifeline_keeps_its_writing_end_to_this_process() -> None:
    read_fd, write_fd = lifeline()
    try:
        assert not os.get_inheritable(write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)
