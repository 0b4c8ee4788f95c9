"""Downloads through r1desk against huggingface_hub alone, on the loopback hub, same file, same run.

    .venv/bin/python bench/bench_download.py [--mb 256] [--reps 3] [--rate 40]

Measures, with a file of random bytes served by tests/support/hub.py:
1. throughput (MB/s, median of --reps, runs alternating): ``engine.download.Download`` (which
   also computes the sha256 while writing) vs ``hf_hub_download`` (size check only);
2. bytes fetched in total when the connection is cut once at 30% and at 99% of the file;
3. bytes fetched in total when the downloading process is killed (SIGKILL) at about 40% and
   the download is then started again (throttled to --rate MB/s so the kill lands mid-file);
4. what is left on disk after that kill and the restart (leftover partial files).
Writes bench/results/download.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPO = "bench/random-GGUF"
NAME = "random.gguf"

OURS = """
import sys
from r1desk.engine.models import download
list(download.Download({repo!r}, [{name!r}], endpoint={endpoint!r}))
"""
THEIRS = """
from huggingface_hub import hf_hub_download
hf_hub_download({repo!r}, {name!r}, endpoint={endpoint!r})
"""


def child_env(cache: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_CACHE": str(cache), "R1DESK_HOME": str(home), "PYTHONPATH": str(ROOT),
                "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    env.pop("HF_TOKEN", None)
    return env


def run_child(kind: str, hub, cache: Path, home: Path) -> subprocess.Popen:
    code = (OURS if kind == "r1desk" else THEIRS).format(repo=REPO, name=NAME, endpoint=hub.endpoint)
    return subprocess.Popen([sys.executable, "-c", code], env=child_env(cache, home), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fresh(tmp: Path, label: str) -> tuple[Path, Path]:
    base = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))
    return base / "hf", base / "home"


def throughput(hub, tmp: Path, size: int, reps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"r1desk": [], "huggingface_hub": []}
    for _ in range(reps):
        for kind in times:
            cache, home = fresh(tmp, kind)
            t0 = time.perf_counter()
            proc = run_child(kind, hub, cache, home)
            assert proc.wait(600) == 0, kind
            times[kind].append(time.perf_counter() - t0)
    return {kind: round(size / statistics.median(ts) / 1e6, 1) for kind, ts in times.items()}


def cut_once(hub, tmp: Path, size: int, at: float) -> dict[str, float]:
    out = {}
    for kind in ("r1desk", "huggingface_hub"):
        cache, home = fresh(tmp, kind)
        hub.clear_faults()
        hub.reset_log()
        hub.fault(REPO, NAME, cut_at=at, times=1)
        proc = run_child(kind, hub, cache, home)
        assert proc.wait(600) == 0, kind
        out[kind] = round(hub.bytes_served(NAME) / size, 3)
    hub.clear_faults()
    return out


def kill_and_restart(hub, tmp: Path, size: int, rate: float) -> dict[str, dict]:
    out = {}
    for kind in ("r1desk", "huggingface_hub"):
        cache, home = fresh(tmp, kind)
        hub.clear_faults()
        hub.reset_log()
        hub.fault(REPO, NAME, throttle=rate, times=1)
        proc = run_child(kind, hub, cache, home)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and hub.bytes_served(NAME) < 0.4 * size:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        before = hub.bytes_served(NAME)
        proc = run_child(kind, hub, cache, home)
        assert proc.wait(600) == 0, kind
        leftovers = [p for p in cache.rglob("*.incomplete")]
        out[kind] = {
            "served_before_kill": before,
            "served_in_total_over_file_size": round(hub.bytes_served(NAME) / size, 3),
            "fetched_again_after_kill": hub.bytes_served(NAME) - size,
            "leftover_partial_files": len(leftovers),
            "leftover_bytes": sum(p.stat().st_size for p in leftovers),
        }
    hub.clear_faults()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="MB/s for the kill test")
    args = parser.parse_args()

    from tests.support.hub import FakeHub

    tmp = Path(tempfile.mkdtemp(prefix="r1desk-bench-dl-"))
    data = tmp / NAME
    with open(data, "wb") as fh:
        for _ in range(args.mb):
            fh.write(os.urandom(1 << 20))
    size = data.stat().st_size
    results: dict = {"file_bytes": size, "python": sys.version.split()[0]}
    try:
        import huggingface_hub

        results["huggingface_hub"] = huggingface_hub.__version__
    except ImportError:
        pass
    with FakeHub() as hub:
        hub.add_repo(REPO, {NAME: data})
        results["throughput_MB_per_s"] = throughput(hub, tmp, size, args.reps)
        print("throughput MB/s", results["throughput_MB_per_s"], flush=True)
        results["cut_at_30pct_served_over_size"] = cut_once(hub, tmp, size, 0.3)
        results["cut_at_99pct_served_over_size"] = cut_once(hub, tmp, size, 0.99)
        print("cut 30%", results["cut_at_30pct_served_over_size"], "cut 99%",
              results["cut_at_99pct_served_over_size"], flush=True)
        results["kill_9_at_40pct_then_restart"] = kill_and_restart(hub, tmp, size, args.rate * 1e6)
        print("kill -9", json.dumps(results["kill_9_at_40pct_then_restart"], indent=1), flush=True)
    out = ROOT / "bench" / "results" / "download.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
