"""Generation speed of the app bundle against the development build: same model, same machine, same run.

    .venv/bin/python bench/bench_bundle.py [--bundle dist/r1desk] [--model PATH] [--tokens 128] [--reps 5]

The bundle's llama.cpp picks its CPU kernels at run time from every variant it ships; the
development build (installer/setup.sh) is compiled once for a fixed instruction set. Each rep
runs ``r1desk chat MODEL -p PROMPT --max-tokens N --temperature 0 --json`` through both, in turn
(the order swapped every rep, each in an empty data folder of its own), and reads the reply's
own figures: tokens per second while generating, and the time to the first token. Medians are
reported with their ratio (bundle / development: 1.0 or more is no slower). The model is
SmolLM2-135M from the test suite unless --model says otherwise. Writes bench/results/bundle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed story about a dragon who organises a library in a mountain kingdom."


def reply(exe: Path, model: str, tokens: int, rep: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="r1desk-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("R1DESK_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(R1DESK_HOME=home, HF_HUB_OFFLINE="1")
        done = subprocess.run([str(exe), "chat", model, "-p", f"[{rep}] {PROMPT}", "--max-tokens", str(tokens),
                               "--temperature", "0", "--ctx", "2048", "--json"],
                              capture_output=True, text=True, timeout=600, env=env, cwd=home)
    if done.returncode != 0:
        raise SystemExit(f"{exe} chat failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    stats = json.loads(done.stdout)["stats"]
    return {"tps": stats["tokens_per_second"], "ttft_ms": stats["ttft_ms"], "tokens": stats["completion_tokens"]}


def variant(exe: Path) -> str:
    build = json.loads(subprocess.run([str(exe), "hw", "--json"], capture_output=True, text=True, check=True,
                                      timeout=120).stdout)["build"]
    return build.get("cpu_variant") or "fixed (" + ", ".join(build.get("cpu_features", [])) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "dist" / "r1desk"))
    ap.add_argument("--dev", default=str(ROOT / ".venv" / "bin" / "r1desk"))
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    bundle = Path(args.bundle)
    bundle_exe = bundle / "r1desk" if bundle.is_dir() else bundle
    dev_exe = Path(args.dev)
    for exe in (bundle_exe, dev_exe):
        if not exe.exists():
            raise SystemExit(f"{exe} is missing (installer/build makes the bundle, installer/setup.sh the development build)")
    if args.model:
        model = args.model
    else:
        from tests.support.models import smollm2_path

        model = str(smollm2_path())

    runs: dict[str, list[dict]] = {"bundle": [], "dev": []}
    exes = {"bundle": bundle_exe, "dev": dev_exe}
    reply(bundle_exe, model, 8, -1)  # both read the model once, so the page cache holds it
    reply(dev_exe, model, 8, -1)
    for rep in range(args.reps):
        order = ("bundle", "dev") if rep % 2 == 0 else ("dev", "bundle")
        for name in order:
            result = reply(exes[name], model, args.tokens, rep)
            runs[name].append(result)
            print(f"rep {rep + 1}/{args.reps} {name:>6}: {result['tps']:6.1f} tok/s, first token {result['ttft_ms']:.0f} ms",
                  flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    result = {
        "model": Path(model).name,
        "tokens": args.tokens,
        "reps": args.reps,
        "bundle_cpu_kernels": variant(bundle_exe),
        "dev_cpu_kernels": variant(dev_exe),
        "bundle_tokens_per_second": median("bundle", "tps"),
        "dev_tokens_per_second": median("dev", "tps"),
        "tokens_per_second_ratio": median("bundle", "tps") / median("dev", "tps"),
        "bundle_ttft_ms": median("bundle", "ttft_ms"),
        "dev_ttft_ms": median("dev", "ttft_ms"),
        "runs": runs,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    out = ROOT / "bench" / "results" / "bundle.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
