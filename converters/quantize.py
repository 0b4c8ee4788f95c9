"""Re-quantise a GGUF model with llama.cpp's own quantiser, in a child process that can be cancelled.

``llama_model_quantize`` has no progress callback and no way to stop it, and a llama.cpp abort
would take the caller down with it; so it runs in its own process. Progress is the size of the
file being written against the size expected; cancel kills the process and removes the file.
What llama.cpp would refuse, or what would only lose quality (re-quantising an already
quantised model), is refused first with a message that says what to do instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from r1desk.engine import paths
from r1desk.engine.errors import Cancelled, ConversionError, DiskFull, ModelNotFound
from r1desk.engine.events import Progress
from r1desk.engine.gguf import quants
from r1desk.engine.processes import exit_with_parent

# Types llama.cpp will not make without an importance matrix (it aborts otherwise).
NEEDS_IMATRIX = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "Q2_K_S"}
UNQUANTISED = {"F32", "F16", "BF16"}
STOP_GRACE = 2.0


def quant_types() -> dict[str, int]:
    """Target names (``Q4_K_M``...) -> llama.cpp ftype numbers."""
    import gguf

    out = {}
    for member in gguf.LlamaFileType:
        name = member.name
        if name == "GUESSED":
            continue
        for prefix in ("MOSTLY_", "ALL_"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = int(member)
    return out


def _ggml_type_for(target: str) -> Any:
    """The tensor type most weights get under a target ftype (for the size estimate)."""
    import gguf

    names = [target, target.rsplit("_", 1)[0]]
    if target.startswith("IQ4"):
        names.append("IQ4_XS")
    for name in names:
        try:
            return gguf.GGMLQuantizationType[name]
        except KeyError:
            continue
    return gguf.GGMLQuantizationType.Q4_K


def _bits(type_name: str) -> float:
    """Bits per weight of a tensor type (for comparing source and target)."""
    import gguf

    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    except KeyError:
        return 32.0
    return size * 8 / block


# When a row is not a multiple of the K-quant block (256), llama.cpp picks a nearby legacy type.
_K_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _expected_size(info: Any, target: str) -> int:
    """About how big the output will be (for progress; llama.cpp's exact mix varies by tensor)."""
    import gguf

    sizes = gguf.GGML_QUANT_SIZES
    main = _ggml_type_for(target)
    total = info.data_offset
    names = {t.name for t in info.tensors}
    output = "output.weight" if "output.weight" in names else "token_embd.weight"  # tied embeddings
    for t in info.tensors:
        if len(t.shape) < 2 or not t.name.endswith(".weight"):
            total += t.nbytes
            continue
        qtype = main
        if t.name == output and _bits(main.name) < 6.5:
            qtype = gguf.GGMLQuantizationType.Q6_K  # llama.cpp keeps the output layer finer
        if t.shape[0] % sizes[qtype][0]:
            qtype = gguf.GGMLQuantizationType[_K_FALLBACK.get(qtype.name, "Q8_0")]
        if t.shape[0] % sizes[qtype][0]:
            total += t.nbytes
            continue
        elements = 1
        for d in t.shape:
            elements *= d
        block, type_size = sizes[qtype]
        total += elements // block * type_size
    return total


def default_output(src: Path, target: str) -> Path:
    from r1desk.engine.models.library import default_name

    stem = default_name(src)
    stem = quants.without_quant(stem).rstrip("-._ ") or stem
    return paths.models_dir() / f"{stem}-{target}.gguf"


def _child(src: str, out: str, ftype: int, allow_requantize: bool, threads: int, log_path: str, conn) -> None:
    # An app that ends without stopping the job (kill -9, a crash) takes this process with it.
    exit_with_parent(mp.parent_process().sentinel)
    # llama.cpp writes its log to stderr; the file keeps it for the error message.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = allow_requantize
    rc = llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(params))
    conn.send(("done", int(rc)))
    conn.close()


def _last_error(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        low = line.lower()
        if "error" in low or "failed" in low or "exception" in low:
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else ""


class Quantize:
    """One re-quantising job: iterate for Progress events, ``cancel()`` from any thread.

    After the iteration ends, ``out`` is the new file and ``model`` its library entry.
    """

    def __init__(
        self,
        src: str | os.PathLike,
        to: str,
        *,
        out: str | os.PathLike | None = None,
        allow_requantize: bool = False,
        threads: int | None = None,
        register: bool = True,
        db: Any = None,
    ):
        self.src_arg = src
        self.target = to.strip().upper()
        self.out_arg = out
        self.allow_requantize = allow_requantize
        self.threads = threads
        self.register = register
        self.db = db
        self.out: Path | None = None
        self.model: Any = None
        self.notes: list[str] = []
        self.pid: int | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[Progress]:
        return self._run()

    # -- checks --------------------------------------------------------------------------
    def _source(self) -> Path:
        from r1desk.engine.models import library

        text = str(self.src_arg)
        candidate = Path(text).expanduser()
        if candidate.is_file():
            return Path(os.path.abspath(candidate))
        if self.db is not None:
            return library.Library(self.db).resolve(text)
        return library.resolve(text)

    def _check(self) -> tuple[Path, Path, int, Any]:
        from r1desk.engine.models.library import inspect_model

        types = quant_types()
        if self.target not in types:
            common = "Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, F16"
            raise ConversionError(f"unknown quantisation {self.target!r} (common ones: {common})")
        if self.target in NEEDS_IMATRIX:
            raise ConversionError(f"{self.target} needs an importance matrix, which r1desk does not make; "
                                  "choose Q3_K_M or larger")
        src = self._source()
        inspection = inspect_model(src)
        info = inspection.info
        weights = [t for t in info.tensors if len(t.shape) >= 2]
        quantised = sorted({t.type_name for t in weights if t.type_name not in UNQUANTISED})
        current = quants.from_file_type(info.file_type) or (quantised[0] if quantised else "F16")
        if current == self.target or info.file_type == types[self.target]:
            raise ConversionError(f"{src.name} is already {self.target}")
        if quantised and not self.allow_requantize:
            raise ConversionError(
                f"{src.name} is already quantised ({current}); quantising it again to {self.target} loses more "
                "quality than quantising the original. Use an F16/BF16/F32 file as the source, or pass "
                "--allow-requantize to do it anyway"
            )
        if quantised:
            worst = min(_bits(q) for q in quantised)
            if _bits(_ggml_type_for(self.target).name) >= worst:
                self.notes.append(f"{self.target} will not be better than the {current} source: the detail "
                                  "lost when it was quantised does not come back")
        out = Path(self.out_arg).expanduser() if self.out_arg else default_output(src, self.target)
        out = Path(os.path.abspath(out))
        if out == src or out in inspection.parts:
            raise ConversionError("the output would overwrite the source; choose another -o")
        if out.exists():
            raise ConversionError(f"{out} already exists; choose another -o or delete it first")
        out.parent.mkdir(parents=True, exist_ok=True)
        expected = _expected_size(info, self.target)
        for part in inspection.parts[1:]:
            from r1desk.engine.gguf.header import read_header

            expected += _expected_size(read_header(part), self.target)
        free = shutil.disk_usage(out.parent).free
        if expected > free:
            raise DiskFull(f"not enough disk space in {out.parent}: about {expected / 1e9:.1f} GB needed, "
                           f"{free / 1e9:.1f} GB free")
        return src, out, types[self.target], expected

    # -- the run -------------------------------------------------------------------------
    def _run(self) -> Iterator[Progress]:
        src, out, ftype, expected = self._check()
        for note in self.notes:
            yield Progress(0, expected, note)
        tmp = out.with_name(out.name + ".partial")
        log_path = paths.logs_dir() / f"quantize-{os.getpid()}-{threading.get_ident()}.log"
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        threads = self.threads if self.threads is not None else 0
        proc = ctx.Process(target=_child, name="r1desk-quantize", daemon=True,
                           args=(str(src), str(tmp), ftype, self.allow_requantize, threads, str(log_path), child))
        started = time.monotonic()
        proc.start()
        child.close()
        self.pid = proc.pid
        result: int | None = None
        try:
            yield Progress(0, expected, f"Quantising {src.name} to {self.target}")
            last = 0.0
            while True:
                if self._cancel.is_set():
                    raise Cancelled(f"quantising {src.name} cancelled; nothing was kept")
                if parent.poll(0.2):
                    try:
                        message = parent.recv()
                    except EOFError:
                        message = None
                    if message and message[0] == "done":
                        result = message[1]
                    break
                if not proc.is_alive():
                    break
                now = time.monotonic()
                if now - last >= 0.25:
                    last = now
                    done = tmp.stat().st_size if tmp.exists() else 0
                    elapsed = now - started
                    speed = done / elapsed if elapsed > 0 and done else None
                    eta = (expected - done) / speed if speed and expected > done else None
                    yield Progress(min(done, expected - 1), expected, f"Quantising {src.name} to {self.target}",
                                   speed=speed, eta=eta)
            proc.join(STOP_GRACE)
            if result is None:
                code = proc.exitcode
                why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                detail = _last_error(log_path)
                raise ConversionError(f"the quantiser process died ({why}) while quantising {src.name}"
                                      + (f": {detail}" if detail else ""))
            if result != 0:
                detail = _last_error(log_path) or "no reason given"
                raise ConversionError(f"llama.cpp could not quantise {src.name} to {self.target}: {detail}")
            os.replace(tmp, out)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(STOP_GRACE)
            parent.close()
            tmp.unlink(missing_ok=True)
            log_path.unlink(missing_ok=True)
        self.out = out
        size = out.stat().st_size
        if self.register:
            from r1desk.engine.models.library import Library

            lib = Library(self.db) if self.db is not None else None
            own_db = None
            if lib is None:
                from r1desk.engine.db.database import open_db

                own_db = open_db()
                lib = Library(own_db)
            try:
                self.model = lib.register(out, origin="quantized",
                                          metadata={"quantized_from": str(src), "quantized_to": self.target})
            finally:
                if own_db is not None:
                    own_db.conn.close()
        yield Progress(size, size, f"Wrote {out.name} ({size / 1e6:.1f} MB)")


def quantize(src: str | os.PathLike, to: str, **kwargs: Any) -> Quantize:
    """Build a re-quantising job; iterate it to run it (see ``Quantize``)."""
    if not str(src):
        raise ModelNotFound("no source model given")
    return Quantize(src, to, **kwargs)
