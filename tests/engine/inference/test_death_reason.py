"""How a dead model process is described: "out of memory" only when the evidence says so."""

from __future__ import annotations

import signal

from r1desk.engine.inference.host import death_reason, oom_kills

KILLED = -signal.SIGKILL


def test_a_kill_without_an_oom_record_is_not_called_out_of_memory() -> None:
    text = death_reason(KILLED, oom_before=3, oom_after=3, available=0.97)
    assert "memory" not in text and "SIGKILL" in text and "another program" in text


def test_the_kernels_oom_record_says_out_of_memory() -> None:
    assert "memory ran out" in death_reason(KILLED, oom_before=3, oom_after=4, available=0.9)


def test_without_the_counter_memory_pressure_decides() -> None:
    assert "memory ran out" in death_reason(KILLED, available=0.02)
    assert "memory" not in death_reason(KILLED, available=0.5)


def test_other_deaths_say_what_is_known() -> None:
    assert "aborted inside llama.cpp" in death_reason(-signal.SIGABRT)
    assert "crashed inside llama.cpp" in death_reason(-signal.SIGSEGV)
    assert death_reason(3) == "exited with code 3"
    assert death_reason(None) == "stopped answering"


def test_the_oom_counter_is_read_from_vmstat(tmp_path) -> None:
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 100\noom_kill 7\n")
    assert oom_kills(str(vmstat)) == 7
    assert oom_kills(str(tmp_path / "missing")) is None
    assert oom_kills() is None or oom_kills() >= 0  # this machine's own counter, where Linux has one


def test_a_windows_crash_status_is_named() -> None:
    """On Windows a process ended by an exception exits with its NTSTATUS, a positive code."""
    assert death_reason(0xC0000005) == "crashed inside llama.cpp (STATUS_ACCESS_VIOLATION)"
    assert death_reason(0xC000001D) == "crashed inside llama.cpp (STATUS_ILLEGAL_INSTRUCTION)"
    assert death_reason(0xC0000409).startswith("aborted inside llama.cpp")
    assert death_reason(1) == "exited with code 1"  # what TerminateProcess leaves
