"""Re-quantising through llama.cpp's quantiser in a child process: results that load and chat, refusals."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.converters import quantize as q
from r1desk.engine.db.database import open_db
from r1desk.engine.errors import Cancelled, ConversionError, DiskFull
from r1desk.engine.gguf.header import check_model
from r1desk.engine.models.library import Library

from tests.support.models import tiny_r1_expected, tiny_r1_f16_path


@pytest.fixture(scope="session")
def tiny_f16() -> Path:
    return tiny_r1_f16_path()


def chat_once(model: str) -> str:
    from r1desk.engine.chat.service import ChatService, SamplingParams
    from r1desk.engine.events import ChatError, ContentDelta

    service = ChatService()
    try:
        service.load_model(model)
        events = list(service.send(None, "hi", SamplingParams(temperature=0.0, max_tokens=48)))
    finally:
        service.close()
    errors = [e for e in events if isinstance(e, ChatError)]
    assert not errors, errors
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["Q8_0", "Q4_0"])
def test_f16_model_quantised_loads_and_chats(tiny_f16: Path, target: str, tmp_path: Path) -> None:
    out = tmp_path / f"tiny-{target}.gguf"
    job = q.quantize(tiny_f16, target, out=out)
    events = list(job)
    assert job.out == out and out.exists()
    assert not list(tmp_path.glob("*.partial"))
    info = check_model(out)
    assert info.file_type == q.quant_types()[target]
    weights = [t for t in info.tensors if len(t.shape) == 2 and t.name.startswith("blk.")]
    assert weights and {t.type_name for t in weights} == {target}
    assert out.stat().st_size < 0.65 * tiny_f16.stat().st_size
    dones = [e.done for e in events if e.total]
    assert dones == sorted(dones) and events[-1].done == events[-1].total == out.stat().st_size

    db = open_db()
    model = Library(db).by_path(out)
    db.conn.close()
    assert model is not None and (model.origin, model.quant) == ("quantized", target)
    assert model.metadata["quantized_from"] == str(tiny_f16)

    # The tiny model's scripted greedy path survives quantisation: the answer is exact.
    assert chat_once(model.name).endswith(tiny_r1_expected()[1])


def test_already_quantised_model_is_refused_without_the_flag(tiny_r1: Path, tmp_path: Path) -> None:
    job = q.quantize(tiny_r1, "Q4_0", out=tmp_path / "x.gguf")
    with pytest.raises(ConversionError) as info:
        list(job)
    message = str(info.value)
    assert "already quantised (Q8_0)" in message and "--allow-requantize" in message
    assert job.pid is None, "refused before starting llama.cpp"
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(ConversionError, match="already Q8_0"):
        list(q.quantize(tiny_r1, "Q8_0", out=tmp_path / "y.gguf", allow_requantize=True))


@pytest.mark.slow
def test_requantising_with_the_flag_works_and_warns_going_up(tiny_r1: Path, tmp_path: Path) -> None:
    down = q.quantize(tiny_r1, "Q4_0", out=tmp_path / "q4.gguf", allow_requantize=True, register=False)
    list(down)
    assert check_model(down.out).file_type == q.quant_types()["Q4_0"]
    up = q.quantize(down.out, "Q8_0", out=tmp_path / "q8.gguf", allow_requantize=True, register=False)
    events = list(up)
    assert any("will not be better" in e.message for e in events)
    assert up.out.exists()


@pytest.mark.parametrize("target, words", [
    ("Q9_X", "unknown quantisation"), ("IQ2_XXS", "importance matrix"), ("q2_k_s", "importance matrix"),
])
def test_targets_llama_cpp_would_refuse(tiny_f16: Path, target: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match=words):
        list(q.quantize(tiny_f16, target, out=tmp_path / "o.gguf"))


def test_output_must_not_exist_or_be_the_source(tiny_f16: Path, tmp_path: Path) -> None:
    (tmp_path / "taken.gguf").write_bytes(b"x")
    with pytest.raises(ConversionError, match="already exists"):
        list(q.quantize(tiny_f16, "Q8_0", out=tmp_path / "taken.gguf"))
    with pytest.raises(ConversionError, match="overwrite the source"):
        list(q.quantize(tiny_f16, "Q8_0", out=tiny_f16))


def test_not_enough_space_is_refused(tiny_f16: Path, tmp_path: Path, monkeypatch) -> None:
    real = q.shutil.disk_usage
    monkeypatch.setattr(q.shutil, "disk_usage", lambda p: type(real(p))(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFull, match="GB needed"):
        list(q.quantize(tiny_f16, "Q8_0", out=tmp_path / "o.gguf"))


def _when_started(job: q.Quantize, action) -> threading.Thread:
    def wait() -> None:
        deadline = time.monotonic() + 30
        while job.pid is None and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


@pytest.mark.slow
def test_cancel_stops_the_child_and_leaves_nothing(tiny_f16: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "o.gguf"
    job = q.quantize(tiny_f16, "Q8_0", out=out)
    thread = _when_started(job, job.cancel)
    with pytest.raises(Cancelled):
        list(job)
    thread.join()
    assert job.pid is not None and not psutil.pid_exists(job.pid), "the child was stopped and reaped"
    assert list(out.parent.iterdir()) == [], "no output, no partial file"


@pytest.mark.slow
def test_a_crashing_quantiser_is_an_error_not_a_crash(tiny_f16: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "o.gguf"
    job = q.quantize(tiny_f16, "Q8_0", out=out)
    thread = _when_started(job, lambda: os.kill(job.pid, signal.SIGKILL))
    with pytest.raises(ConversionError, match=r"the quantiser process died \(signal 9\)"):
        list(job)
    thread.join()
    assert list(out.parent.iterdir()) == []


@pytest.mark.slow
def test_quantize_command(tiny_f16: Path, tiny_r1: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-Q8_0.gguf"
    result = runner.invoke(cli, ["quantize", str(tiny_f16), "--to", "q8_0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output and out.exists()
    refused = runner.invoke(cli, ["quantize", str(tiny_r1), "--to", "Q4_0", "-o", str(tmp_path / "n.gguf")])
    assert refused.exit_code == 1
    assert [line for line in refused.output.splitlines() if line.startswith("Error:")][0].count("--allow-requantize")
