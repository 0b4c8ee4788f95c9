"""``r1desk pull``, ``r1desk models`` and ``r1desk quantize``: getting models and keeping track of them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from r1desk.cli import cli
from r1desk.engine.db.database import open_db
from r1desk.engine.events import Progress
from r1desk.engine.hardware import probe
from r1desk.engine.models import catalog, recommend
from r1desk.engine.models import download as dl
from r1desk.engine.models.library import FOREIGN_ORIGINS, Library, Model
from r1desk.engine.units import human_bytes

RECOMMEND_CTX = 8192



def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds > 86400 * 7:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """One updating line on a terminal; a line per step (and every 10%) when piped to a file."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_message = None
        self.last_tenth = -1
        self.width = 0

    def update(self, ev: Progress) -> None:
        fraction = ev.fraction
        # Bytes unless the event counts something else (indexing counts files, at chunks/s).
        unit = getattr(ev, "unit", None)
        if fraction is not None:
            filled = int(fraction * 24)
            bar = "█" * filled + "░" * (24 - filled)
            if unit:
                figures = f" {bar} {fraction * 100:5.1f}%  {ev.done}/{ev.total} {unit}"
                if ev.speed:
                    figures += f"  {ev.speed:.1f} {getattr(ev, 'speed_unit', unit)}/s  ETA {_duration(ev.eta)}"
            else:
                figures = f" {bar} {fraction * 100:5.1f}%  {human_bytes(ev.done)}/{human_bytes(ev.total)}"
                if ev.speed:
                    figures += f"  {human_bytes(ev.speed)}/s  ETA {_duration(ev.eta)}"
        else:
            figures = ""
        line = f"{ev.message}{figures}"
        if self.tty:
            pad = max(0, self.width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
            self.width = len(line)
            return
        tenth = int(fraction * 10) if fraction is not None else -1
        if ev.message != self.last_message or tenth != self.last_tenth:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last_message, self.last_tenth = ev.message, tenth

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def run_job(job, cancel=None) -> float:
    """Show a long job's progress events on one ProgressBar; Ctrl+C calls ``cancel`` (the job's
    own ``cancel()`` by default) and goes on up. Returns the seconds it took."""
    bar = ProgressBar()
    started = time.monotonic()
    try:
        for event in job:
            bar.update(event)
    except KeyboardInterrupt:
        (cancel or job.cancel)()
        raise
    finally:
        bar.close()
    return time.monotonic() - started


def recommended_quant(repo: str, n_ctx: int = RECOMMEND_CTX) -> tuple[str | None, str | None, str]:
    """(quant, file, a line saying where the choice came from); None, None when there is no recommendation."""
    cat = catalog.load()
    entry = cat.by_repo(repo)
    if entry is not None and entry.role == "embedding" and entry.default_quant:
        chosen = entry.quant(entry.default_quant)
        if chosen is not None:
            return chosen.quant, chosen.files[0].name, (f"{chosen.quant} is the quantisation r1desk takes for "
                                                        f"{entry.name}, an embedding model for your documents.")
    for choice in recommend.recommend(probe.detect(), n_ctx, cat):
        if choice.repo.lower() == repo.lower():
            return choice.quant.upper(), (choice.files[0] if choice.files else None), \
                f"{choice.quant} is the recommended quantisation for this machine."
    if any(m.repo.lower() == repo.lower() for m in cat.models):
        return None, None, (f"By r1desk's estimate no file of {repo} fits this machine; taking its only GGUF "
                            f"file, or {dl.DEFAULT_QUANT}.")
    return None, None, f"{repo} is not in r1desk's catalog; taking its only GGUF file, or {dl.DEFAULT_QUANT}."


# ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("spec", metavar="MODEL[:QUANT]")
@click.option("--file", "filename", help="Exact file in the repo (for a split model, its first part).")
@click.option("--endpoint", help="Hub or mirror address, e.g. https://hf-mirror.com (saved as the default with --save-endpoint).")
@click.option("--save-endpoint", is_flag=True, help="Remember --endpoint for later downloads.")
@click.option("--folder", type=click.Path(file_okay=False), help="Download into this folder instead of the shared Hugging Face cache.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option("--name", help="Name for the model in the library.")
@click.option("--ctx", "n_ctx", type=int, default=RECOMMEND_CTX, show_default=True, help="Context length the recommendation plans for.")
def pull(spec, filename, endpoint, save_endpoint, folder, revision, name, n_ctx):
    """Download a GGUF model from the Hugging Face hub (or a mirror), verify it and add it to the library.

    MODEL is a hub repo (owner/name) or the id of a model in 'r1desk catalog'; without :QUANT
    the quantisation recommended for this machine is taken.

    Examples: r1desk pull deepseek-r1-distill-qwen-7b, r1desk pull deepseek-r1-distill-qwen-7b:Q8_0,
    r1desk pull unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF:Q4_K_M
    """
    repo, quant = dl.parse_spec(spec)  # a bare name is a catalog id, refused here if unknown
    if "/" not in spec:
        click.echo(f"{spec.partition(':')[0].strip()} is {repo} in r1desk's catalog.", err=True)
    if endpoint and save_endpoint:
        dl.set_hub_endpoint(endpoint)
    if quant is None and filename is None:
        quant, rec_file, note = recommended_quant(repo, n_ctx)
        filename = rec_file
        click.echo(note, err=True)
    job = dl.Pull(repo, quant=quant if not filename else None, filename=filename, revision=revision,
                  folder=folder, endpoint=endpoint, name=name)
    try:
        run_job(job)
    except KeyboardInterrupt:
        click.echo("Stopped. What was downloaded is kept; run the same command to resume.", err=True)
        raise
    model = job.model
    assert model is not None
    click.echo(f"Ready: {model.name} ({model.quant or '?'}, {human_bytes(model.size)}) at {model.path}")
    click.echo(f"Chat with it: r1desk chat {model.name}")


def _row(m: Model) -> list[str]:
    return [m.name, m.quant or "-", human_bytes(m.size), m.architecture or "-", m.status, m.origin, m.path]


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def models(ctx, as_json):
    """List the models r1desk knows (see also: models scan, models rm)."""
    if ctx.invoked_subcommand is not None:
        return
    db = open_db()
    try:
        found = Library(db).list()
    finally:
        db.conn.close()
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in found], ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("No models yet. `r1desk pull REPO` downloads one; `r1desk models scan` finds ones already on disk.")
        return
    header = ["NAME", "QUANT", "SIZE", "ARCH", "STATUS", "FROM", "PATH"]
    rows = [header] + [_row(m) for m in found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


@models.command("rm")
@click.argument("name")
@click.option("--delete-files", is_flag=True,
              help="Also delete the file(s) r1desk wrote (in its models folder, or downloaded); links are unlinked, never followed.")
def models_rm(name, delete_files):
    """Remove NAME from the library (its file is kept unless --delete-files)."""
    db = open_db()
    try:
        removal = Library(db).remove(name, delete_files=delete_files)
    finally:
        db.conn.close()
    model = removal.model
    click.echo(f"Removed {model.name} from the library.")
    if not delete_files:
        click.echo(f"The file was kept: {model.path}")
        return
    if removal.deleted:
        click.echo(f"Deleted {len(removal.deleted)} file(s), {human_bytes(removal.freed)} freed.")
    if model.origin in FOREIGN_ORIGINS:
        click.echo(f"Its file belongs to {model.origin} and was kept: {model.path}")
        return
    for path, why in removal.kept:
        click.echo(f"Kept {path}: {why}.")


@models.command("scan")
@click.option("--folder", "folders", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Also look in this folder (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def models_scan(folders, as_json):
    """Find GGUF models already on this machine (r1desk, Hugging Face cache, LM Studio, Ollama)."""
    from r1desk.engine.models.library import default_roots

    roots = default_roots() + [("local", Path(f)) for f in folders]
    db = open_db()
    try:
        report = Library(db).scan(roots)
    finally:
        db.conn.close()
    swept = dl.sweep_incomplete()
    if as_json:
        out = report.to_dict() | {"swept": [str(p) for p in swept.removed], "freed": swept.freed}
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for kind, folder in report.roots:
        click.echo(f"Looked in {folder} ({kind})")
    for m in report.added:
        click.echo(f"  added   {m.name}  ({m.quant or '?'}, {human_bytes(m.size)})  {m.path}")
    for m in report.updated:
        click.echo(f"  updated {m.name}  [{m.status}]")
    for m in report.missing:
        click.echo(f"  missing {m.name}  (file gone: {m.path})")
    for path, reason in report.skipped:
        click.echo(f"  skipped {path}: {reason}")
    if swept.removed:
        click.echo(f"Removed {len(swept.removed)} unfinished download file(s), {human_bytes(swept.freed)} freed.")
    click.echo(f"{len(report.added)} added, {len(report.missing)} missing, {len(report.skipped)} skipped.")


@cli.command()
@click.argument("src")
@click.option("--to", "target", required=True, help="Quantisation to make, e.g. Q4_K_M, Q5_K_M, Q8_0.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: r1desk's models folder).")
@click.option("--allow-requantize", is_flag=True, help="Quantise a file that is already quantised (loses quality).")
@click.option("--threads", type=int, help="CPU threads (default: all).")
def quantize(src, target, output, allow_requantize, threads):
    """Make a smaller copy of SRC (a .gguf file or library name) with llama.cpp's quantiser."""
    from r1desk.converters.quantize import Quantize

    job = Quantize(src, target, out=output, allow_requantize=allow_requantize, threads=threads)
    seconds = run_job(job)
    for note in job.notes:
        click.echo(f"Note: {note}", err=True)
    name = job.model.name if job.model is not None else job.out
    click.echo(f"Wrote {job.out} in {seconds:.1f} s; chat with it: r1desk chat {name}")
