"""``r1desk --self-test``: does r1desk work on this machine? One line per part, then a verdict.

An app bundle lands on computers its makers never saw: another CPU, no fonts, a read-only
home, a missing system library. Each check runs the real part the app uses (the data folder,
the database with its full-text search and extensions, llama.cpp and its CPU kernels, the
hardware probe, Qt on the offscreen platform in a child process, and, when the library has
one, a small model answering through the model process), so a failure names the part and why.
The exit status is 1 when any check failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

QT_CHECK_SECONDS = 60
MODEL_TOKENS = 8
EMBEDDING_ARCHITECTURES = ("bert", "nomic-bert", "jina-bert-v2", "t5encoder")


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped, with the reason in ``detail``
    detail: str


def data_folder() -> Check:
    from r1desk.engine import paths

    home = paths.home()
    try:
        folder = paths.data_dir()
        probe = folder / f".self-test-{uuid.uuid4().hex}"
        with open(probe, "wb") as f:
            f.write(b"r1desk")
            f.flush()
            os.fsync(f.fileno())
        ok = probe.read_bytes() == b"r1desk"
        probe.unlink()
    except OSError as exc:
        return Check("data folder", False, f"{home} is not writable ({exc.strerror or exc})")
    return Check("data folder", ok, str(home))


def database() -> Check:
    """The app's own database, opened as the app opens it, with full-text search and the
    extensions its connections load."""
    from r1desk.engine.db import database as db_module

    db = db_module.open_db()
    try:
        version = db.execute("SELECT sqlite_version()").fetchone()[0]
        db.execute("CREATE VIRTUAL TABLE temp.self_test USING fts5(body)")
        db.execute("INSERT INTO temp.self_test (body) VALUES ('llama kernels chosen at run time')")
        hits = db.execute("SELECT count(*) FROM temp.self_test WHERE self_test MATCH 'kernels'").fetchone()[0]
        db.execute("DROP TABLE temp.self_test")
        if hits != 1:
            return Check("database", False, f"SQLite {version}: full-text search found {hits} rows instead of 1")
        parts = [f"SQLite {version}", "FTS5"]
        if getattr(db_module, "sqlite_vec", None) is not None:
            parts.append(f"sqlite-vec {db.execute('SELECT vec_version()').fetchone()[0]}")
        return Check("database", True, f"{', '.join(parts)}; {db.path}")
    finally:
        db.close()


def llama_and_hardware() -> Iterator[Check]:
    from r1desk.engine.hardware import probe

    hw = probe.detect()
    build = hw.build
    if not build.backends:
        yield Check("llama.cpp", False, build.system_info or "llama.cpp did not load")
    elif build.cpu_variant.startswith("unknown"):
        yield Check("llama.cpp", False, f"CPU kernels {build.cpu_variant}")
    elif getattr(sys, "frozen", False) and not build.cpu_variants:
        yield Check("llama.cpp", False, "this bundle's llama.cpp has one fixed set of CPU kernels instead of "
                                        "variants chosen at run time")
    else:
        features = ", ".join(f for f in build.cpu_features if f not in ("OPENMP", "REPACK", "LLAMAFILE"))
        if build.cpu_variants:
            kernels = f"CPU kernels {build.cpu_variant} ({features}) of {len(build.cpu_variants)} variants"
        else:
            kernels = f"CPU kernels built for {features}"
        yield Check("llama.cpp", True, f"llama-cpp-python {build.version}; backends {', '.join(build.backends)}; "
                                       f"{kernels}")
    ok = hw.ram_total > 0 and hw.cpu.logical_cores > 0
    gpus = ", ".join(g.name for g in hw.gpus) or "no GPU"
    yield Check("hardware", ok, f"{hw.cpu.name}, {hw.cpu.physical_cores} cores, "
                                f"{hw.ram_total / 1024**3:.1f} GiB RAM, {gpus}")


def qt(platform: str = "offscreen") -> Check:
    """Qt in a child process (the command line never imports it), on ``platform``."""
    from r1desk.engine.processes import child_command

    env = dict(os.environ, QT_QPA_PLATFORM=platform)
    name = f"Qt ({platform})"
    try:
        done = subprocess.run(child_command("r1desk.app.qtcheck"), env=env, capture_output=True, text=True,
                              timeout=QT_CHECK_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(name, False, f"Qt did not start within {QT_CHECK_SECONDS} s")
    try:
        checks = json.loads(done.stdout.strip().splitlines()[-1])["checks"]
    except (IndexError, ValueError, KeyError):
        # Qt aborts when the platform plugin or a library it needs cannot load; its reason is on stderr.
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if "plugin" in line.lower() or "error" in line.lower()),
                      lines[-1] if lines else f"exit status {done.returncode}")
        return Check(name, False, reason[:300])
    failed = [f"{part}: {detail}" for part, ok, detail in checks if not ok]
    if failed:
        return Check(name, False, "; ".join(failed))
    return Check(name, True, ", ".join(detail for _, _, detail in checks))


def model() -> Check:
    """The smallest chat model in the library answers a few tokens through the model process."""
    from r1desk.engine.chat.service import SamplingParams
    from r1desk.engine.errors import R1deskError
    from r1desk.engine.inference.host import LoadOptions, ModelHost
    from r1desk.engine.models.library import Library

    models = [m for m in Library().list() if m.status == "ready"
              and (m.architecture or "").lower() not in EMBEDDING_ARCHITECTURES]
    if not models:
        return Check("model", None, "no model in the library (skipped)")
    chosen = min(models, key=lambda m: m.size or 0)
    host = ModelHost()
    try:
        info = host.load(chosen.path, LoadOptions(n_ctx=512))
        params = SamplingParams(temperature=0, max_tokens=MODEL_TOKENS, seed=1).resolved(info)
        started = time.perf_counter()
        pieces, stats = 0, {}
        for event in host.chat([{"role": "user", "content": "Say hello."}], params):
            if event[0] in ("r", "c"):
                pieces += 1
            elif event[0] == "done":
                stats = event[1] if isinstance(event[1], dict) else {}
        seconds = time.perf_counter() - started
    except R1deskError as exc:
        return Check("model", False, f"{chosen.name}: {exc}")
    finally:
        host.close()
    tokens = stats.get("completion_tokens") or pieces
    if not tokens:
        return Check("model", False, f"{chosen.name} loaded but generated nothing")
    speed = stats.get("tokens_per_second")
    rate = f", {speed:.1f} tokens/s" if speed else ""
    return Check("model", True, f"{chosen.name}: {tokens} tokens in {seconds:.1f} s{rate}")


def checks() -> Iterator[Check]:
    """Every check in turn; one that raises is a failed check with its reason, and the rest still run."""
    steps: list[tuple[str, Callable[[], Check | Iterator[Check]]]] = [
        ("data folder", data_folder), ("database", database), ("llama.cpp", llama_and_hardware),
        ("Qt (offscreen)", qt)]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        # The platform the window would open on, as well.
        platform = "xcb" if os.environ.get("DISPLAY") else "wayland"
        steps.append((f"Qt ({platform})", lambda: qt(platform)))
    steps.append(("model", model))
    for name, step in steps:
        try:
            result = step()
            yield from ([result] if isinstance(result, Check) else result)
        except Exception as exc:  # a part that crashes is that part failing, not the self-test
            yield Check(name, False, f"{type(exc).__name__}: {exc}")


def run(echo: Callable[[str], None] = print) -> int:
    from r1desk.engine import paths

    try:
        from importlib.metadata import version

        ours = version("r1desk")
    except Exception:
        ours = "unknown version"
    where = "bundle" if getattr(sys, "frozen", False) else "Python " + ".".join(map(str, sys.version_info[:3]))
    echo(f"r1desk {ours} self-test ({where}; data in {paths.home()})")
    failed = []
    for check in checks():
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[check.ok]
        echo(f"  {mark} {check.name:<16} {check.detail}")
        if check.ok is False:
            failed.append(check.name)
    if failed:
        echo(f"Self-test FAILED: {', '.join(failed)}")
        return 1
    echo("Self-test passed.")
    return 0
