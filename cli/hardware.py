"""``r1desk hw``, ``estimate``, ``recommend`` and ``catalog``: the machine, the fit, the choice."""

from __future__ import annotations

import json
from pathlib import Path

import click

from r1desk.cli import cli
from r1desk.engine.errors import ModelNotFound
from r1desk.engine.hardware import fit
from r1desk.engine.hardware import probe as hardware_mod
from r1desk.engine.models import catalog as catalog_mod
from r1desk.engine.models import recommend as recommend_mod
from r1desk.engine.units import human_bytes

GiB = 1024**3


def _gb(n: int | None) -> str:
    return "-" if n is None else f"{n / GiB:.2f}"


def _machine(profile: str | None) -> hardware_mod.Hardware:
    return hardware_mod.Hardware.load(profile) if profile else hardware_mod.detect()


def _echo_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@cli.command("hw")
@click.option("--json", "as_json", is_flag=True, help="Print the machine as JSON (also the --profile format).")
def hw(as_json):
    """This machine: CPU, RAM, GPUs, and what the installed llama.cpp can use."""
    machine = hardware_mod.detect()
    if as_json:
        click.echo(machine.to_json())
        return
    for line in describe(machine):
        click.echo(line)


def _gpu_layers(value: str):
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("a number of layers, -1 for all, or auto") from None


def _load_info(model: str):
    """A GGUFInfo from a path, a header-only file, a URL, or a catalog id ("id" or "id:QUANT")."""
    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.gguf.remote import is_url, read_remote_header

    if is_url(model):
        return read_remote_header(model), None
    path = Path(model).expanduser()
    if path.exists():
        return read_header(path, allow_truncated_data=True), None
    model_id, _, quant = model.partition(":")
    try:
        entry = catalog_mod.load().get(model_id)
    except KeyError:
        raise ModelNotFound(f"{model}: not a file, a URL or a model in r1desk's catalog") from None
    quant = (quant or "Q4_K_M").upper()
    qf = entry.quant(quant)
    if qf is None:
        raise ModelNotFound(f"{entry.name} has no {quant} file in the catalog "
                            f"(it has {', '.join(q.quant for q in entry.quants)})")
    info = catalog_mod.info_for(entry, quant)
    return info, qf


@cli.command()
@click.argument("model")
@click.option("--ctx", "n_ctx", type=int, default=None,
              help="Context length (default: the model's, at most 8192, as the app loads it).")
@click.option("--gpu-layers", "gpu_layers", default="auto", show_default=True,
              help="Layers on the GPU: a number, -1 for all, or auto.")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True)
@click.option("--flash-attn", is_flag=True, help="Plan with flash attention on.")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Estimate for a described machine (JSON, as printed by 'r1desk hw --json').")
@click.option("--json", "as_json", is_flag=True)
def estimate(model, n_ctx, gpu_layers, kv_type, flash_attn, profile, as_json):
    """Memory MODEL needs on this machine, per device. MODEL: a GGUF path, a header-only GGUF,
    a URL (only the header is fetched) or a catalog id such as deepseek-r1-distill-qwen-7b:Q4_K_M."""
    info, qf = _load_info(model)
    machine = _machine(profile)
    shape = fit.ModelShape.from_info(info)
    if qf is not None:
        shape.file_size = qf.size
    ctx = n_ctx or min(shape.n_ctx_train or 4096, 8192)
    plan = fit.estimate(shape, n_ctx=ctx, hardware=machine, n_gpu_layers=_gpu_layers(gpu_layers),
                        kv_type=kv_type, flash_attn=flash_attn)
    if as_json:
        _echo_json({"model": {"name": shape.name, "architecture": shape.architecture,
                              "quant": shape.quant, "n_layer": shape.n_layer, "n_params": shape.n_params,
                              "file_size": shape.file_size, "n_ctx_train": shape.n_ctx_train,
                              "source": str(info.source)},
                    "machine": machine.source, "plan": plan.to_dict()})
        return
    click.echo(f"{shape.name}  ({shape.architecture}, {shape.n_params / 1e9:.2f}B parameters"
               f"{', ' + shape.quant if shape.quant else ''}, {_gb(shape.file_size)} GiB file)")
    click.echo(f"Settings: context {ctx}, KV cache {kv_type}, flash attention {'on' if flash_attn else 'off'}, "
               f"GPU layers {plan.n_gpu_layers} of {plan.n_layer + 1}")
    click.echo(f"{'device':<8} {'layers':>6} {'weights':>8} {'KV':>7} {'compute':>8} {'fixed':>7} "
               f"{'total':>8} {'usable':>8}  GiB")
    for d in plan.devices:
        click.echo(f"{d.device:<8} {d.layers:>6} {_gb(d.weights):>8} {_gb(d.kv):>7} {_gb(d.compute):>8} "
                   f"{_gb(d.overhead):>7} {_gb(d.total):>8} {_gb(d.budget):>8}  {'ok' if d.fits else 'TOO BIG'}")
    if plan.unified_budget is not None:
        click.echo(f"Unified memory: {_gb(plan.unified_total)} of {_gb(plan.unified_budget)} GiB")
    click.echo(plan.describe())
    for note in plan.notes:
        click.echo(f"Note: {note}")
    if not plan.fits:
        raise SystemExit(2)


@cli.command()
@click.option("--ctx", "n_ctx", type=int, default=8192, show_default=True, help="The context length you want.")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Recommend for a described machine (JSON, as printed by 'r1desk hw --json').")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True)
@click.option("--flash-attn", is_flag=True)
@click.option("--limit", type=int, default=None, help="Show only the first N choices.")
@click.option("--json", "as_json", is_flag=True)
def recommend(n_ctx, profile, kv_type, flash_attn, limit, as_json):
    """The models and quantisations that fit this machine, best first."""
    machine = _machine(profile)
    choices = recommend_mod.recommend(machine, n_ctx, catalog_mod.load(), kv_type=kv_type, flash_attn=flash_attn,
                                      limit=limit)
    if as_json:
        _echo_json({"machine": machine.source, "n_ctx": n_ctx, "choices": [c.to_dict() for c in choices]})
        return
    if not choices:
        click.echo("Nothing in the catalog fits this machine at this context length; try --ctx 2048.")
        return
    for i, c in enumerate(choices, 1):
        est = " (size estimated)" if c.size_estimated else ""
        click.echo(f"{i:>2}. {c.name} {c.quant}  {human_bytes(c.size)}{est}  [{c.tier}]")
        click.echo(f"    {why(c)}")
        click.echo(f"    {c.repo}: {', '.join(c.files)}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def catalog(ctx, as_json):
    """The models r1desk offers (and 'catalog refresh' to update their files from the hub)."""
    if ctx.invoked_subcommand is not None:
        return
    cat = catalog_mod.load()
    if as_json:
        _echo_json(cat.to_dict())
        return
    click.echo(f"Catalog of {cat.updated or 'unknown date'}:")
    for m in cat.models:
        sizes = [q.size for q in m.quants]
        click.echo(f"  {m.id:<32} {m.params / 1e9:5.1f}B  {len(m.quants):>2} quants "
                   f"{human_bytes(min(sizes)):>8} - {human_bytes(max(sizes)):>8}  {m.repo}")
    for note in cat.notes:
        click.echo(f"Note: {note}")


@catalog.command("refresh")
@click.option("--endpoint", default=None, help="Hub endpoint or mirror (default: huggingface_hub's, HF_ENDPOINT).")
def catalog_refresh(endpoint):
    """Re-read every model's file list and sizes from the hub."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint) if endpoint else HfApi()
    last = None
    for ev in catalog_mod.refresh(catalog_mod.load(catalog_mod.CATALOG_PATH), api=api):
        last = ev
        click.echo(f"[{ev.done}/{ev.total}] {ev.message}", err=True)
    if last is not None:
        click.echo(last.message)


def why(choice) -> str:
    """Why a recommendation was made, in one sentence."""
    plan = choice.plan
    tps = plan.tokens_per_second or 0
    speed = f"about {tps:.0f} tokens/s" if tps >= 1 else "under 1 token/s"
    quality = (f"{choice.quant} is below the usual Q4_K_M floor, the most of this model that fits"
               if choice.below_floor else f"{choice.quant} is the best quality that fits")
    ctx = f"{choice.n_ctx // 1024}K" if choice.n_ctx >= 1024 else str(choice.n_ctx)
    names = " + ".join(choice.gpu_names)
    slow = choice.tier == recommend_mod.TIER_SLOW
    if choice.tier == recommend_mod.TIER_GPU:
        used = sum(d.total for d in plan.gpus)
        budget = sum(d.budget or 0 for d in plan.gpus)
        return (f"Runs entirely on {names} ({human_bytes(used)} of {human_bytes(budget)} with a {ctx} context), "
                f"{speed}; {quality} with room to spare.")
    if plan.mode == "partial":
        return (f"{plan.offloaded_layers} of {plan.n_layer} layers on {names} ({human_bytes(plan.gpu_bytes)}), "
                f"the rest in RAM ({human_bytes(plan.ram_bytes)}), {speed}; {quality}"
                f"{'; slow, but nothing faster of this quality fits' if slow else ''}.")
    where = "unified memory" if choice.unified_memory else "RAM"
    return (f"Runs on the CPU in {where} ({human_bytes(plan.ram_bytes)} of {human_bytes(plan.cpu.budget or 0)} usable), "
            f"{speed}; {quality}{'; slow, but it is what fits' if slow else ''}.")


def describe(hw) -> list[str]:
    """Lines for ``r1desk hw``."""
    gb = human_bytes
    lines = [
        f"Machine:  {hw.os or 'unknown OS'}" + (f"  (profile: {hw.source})" if hw.source != "detected" else ""),
        f"CPU:      {hw.cpu.name} — {hw.cpu.physical_cores} cores / {hw.cpu.logical_cores} threads"
        + (f"; {', '.join(hw.cpu.flags)}" if hw.cpu.flags else ""),
        f"RAM:      {gb(hw.ram_total)} total" + (f", {gb(hw.ram_available)} available" if hw.ram_available is not None else ""),
    ]
    if not hw.gpus:
        lines.append("GPU:      none found")
    for g in hw.gpus:
        usable = g in hw.usable_gpus()
        extra = []
        if g.unified:
            extra.append(f"unified memory, Metal may use {gb(g.working_set or 0)}")
        else:
            extra.append(f"{gb(g.total)} VRAM, {gb(g.free)} free")
        if g.driver:
            extra.append(f"driver {g.driver}")
        if g.cuda_version:
            extra.append(f"CUDA {g.cuda_version}")
        if g.compute_capability:
            extra.append(f"compute {g.compute_capability}")
        state = "usable" if usable else "NOT usable by this build"
        lines.append(f"GPU {g.index}:    {g.name} ({'; '.join(extra)}) — {state}")
    b = hw.build
    lines.append(f"llama.cpp: backends {', '.join(b.backends) or 'none'}; GPU offload "
                 f"{'yes' if b.gpu_offload else 'no'}" + (f"; llama-cpp-python {b.version}" if b.version else ""))
    if b.system_info:
        lines.append(f"           {b.system_info}")
    for note in hw.notes:
        lines.append(f"Note:     {note}")
    return lines
