"""``r1desk hw``, ``estimate``, ``recommend`` and ``catalog``: the machine, the fit, the choice.

Every figure is against one budget per device (engine.hardware.fit.ram_budget/gpu_budget):
what this machine can give a model (``recommend``, ``estimate``'s verdict), and what it can give
right now (``estimate``'s "right now" line, the model host's load check). The output says which.
Sentences come in English or Chinese (``--lang``, default from the locale; cli/words.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from r1desk.cli import cli
from r1desk.cli.words import Words, lang_option
from r1desk.engine.errors import ModelNotFound
from r1desk.engine.hardware import fit
from r1desk.engine.hardware import probe as hardware_mod
from r1desk.engine.models import catalog as catalog_mod
from r1desk.engine.models import recommend as recommend_mod
from r1desk.engine.units import human_bytes


def _machine(profile: str | None) -> hardware_mod.Hardware:
    return hardware_mod.Hardware.load(profile) if profile else hardware_mod.detect()


def _echo_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@cli.command("hw")
@click.option("--json", "as_json", is_flag=True, help="Print the machine as JSON (also the --profile format).")
@lang_option
def hw(as_json, lang):
    """This machine: CPU, RAM, GPUs, what the installed llama.cpp can use, and what a model may use."""
    machine = hardware_mod.detect()
    if as_json:
        click.echo(machine.to_json())
        return
    for line in describe(machine, lang):
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
@lang_option
def estimate(model, n_ctx, gpu_layers, kv_type, flash_attn, profile, as_json, lang):
    """Memory MODEL needs on this machine, per device. MODEL: a GGUF path, a header-only GGUF,
    a URL (only the header is fetched) or a catalog id such as deepseek-r1-distill-qwen-7b:Q4_K_M.

    The verdict is against what this machine can give a model, as 'recommend' judges (exit
    status 2 when it does not fit); a line says whether it would load right now."""
    w = Words(lang)
    info, qf = _load_info(model)
    machine = _machine(profile)
    shape = fit.ModelShape.from_info(info)
    if qf is not None:
        shape.file_size = qf.size
    ctx = n_ctx or min(shape.n_ctx_train or 4096, 8192)
    ngl = _gpu_layers(gpu_layers)
    plan = fit.estimate(shape, n_ctx=ctx, hardware=machine, n_gpu_layers=ngl, kv_type=kv_type,
                        flash_attn=flash_attn, planning=True)
    now = fit.estimate(shape, n_ctx=ctx, hardware=machine, n_gpu_layers=ngl, kv_type=kv_type,
                       flash_attn=flash_attn)
    if as_json:
        _echo_json({"model": {"name": shape.name, "architecture": shape.architecture,
                              "quant": shape.quant, "n_layer": shape.n_layer, "n_params": shape.n_params,
                              "file_size": shape.file_size, "n_ctx_train": shape.n_ctx_train,
                              "source": str(info.source)},
                    "machine": machine.source, "plan": plan.to_dict(), "plan_now": now.to_dict()})
        return
    quant = w(", {quant}", quant=shape.quant) if shape.quant else ""
    click.echo(w("{name}  ({arch}, {params}B parameters{quant}, {size} file)",
                 name=shape.name, arch=shape.architecture, params=f"{shape.n_params / 1e9:.2f}", quant=quant,
                 size=human_bytes(shape.file_size)))
    click.echo(w("Settings: context {ctx}, KV cache {kv}, flash attention {fa}, GPU layers {ngl} of {all}",
                 ctx=f"{ctx:,}", kv=kv_type, fa=w("on") if flash_attn else w("off"),
                 ngl=plan.n_gpu_layers, all=plan.n_layer + 1))
    for line in budget_lines(machine, w):
        click.echo(line)
    heads = [w("device"), w("layers"), w("weights"), "KV", w("compute"), w("fixed"), w("total"), w("usable")]
    click.echo(w.ljust(heads[0], 8) + w.rjust(heads[1], 7) + "".join(w.rjust(h, 10) for h in heads[2:]))
    for d in plan.devices:
        figures = (d.weights, d.kv, d.compute, d.overhead, d.total, d.budget)
        click.echo(f"{d.device:<8}{d.layers:>7}" + "".join(f"{human_bytes(n):>10}" for n in figures)
                   + "  " + (w("ok") if d.fits else w("TOO BIG")))
    if plan.unified_budget is not None:
        click.echo(w("Unified memory: {used} of {budget} usable",
                     used=human_bytes(plan.unified_total), budget=human_bytes(plan.unified_budget)))
    click.echo(plan_words(plan, w))
    if plan.fits and machine.ram_available is not None:
        click.echo(right_now(now, machine, w))
    for note in plan.notes:
        click.echo(w("Note: {note}", note=note_words(note, w)))
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
@lang_option
def recommend(n_ctx, profile, kv_type, flash_attn, limit, as_json, lang):
    """The models and quantisations that fit this machine, best first (judged against what it can
    give a model, not what is free this minute: this is about what to download)."""
    w = Words(lang)
    machine = _machine(profile)
    choices = recommend_mod.recommend(machine, n_ctx, catalog_mod.load(), kv_type=kv_type, flash_attn=flash_attn,
                                      limit=limit)
    if as_json:
        _echo_json({"machine": machine.source, "n_ctx": n_ctx, "choices": [c.to_dict() for c in choices]})
        return
    for line in budget_lines(machine, w):
        click.echo(line)
    if not choices:
        click.echo(w("Nothing in the catalog fits this machine at this context length; try --ctx 2048."))
        return
    for i, c in enumerate(choices, 1):
        est = w(" (size estimated)") if c.size_estimated else ""
        click.echo(f"{i:>2}. {c.name} {c.quant}  {human_bytes(c.size)}{est}  [{c.tier}]")
        click.echo(f"    {why(c, lang)}")
        if c.ctx_capped:
            click.echo("    " + w("Context capped at {ctx} tokens, the most this model was trained for.",
                                  ctx=f"{c.n_ctx:,}"))
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


# Words ------------------------------------------------------------------------------------------
def speed_words(plan, w: Words) -> str:
    tps = plan.tokens_per_second or 0
    return w("about {tps} tokens/s, estimated", tps=f"{tps:.0f}") if tps >= 1 else w("under 1 token/s, estimated")


def why(choice, lang: str | None = "en") -> str:
    """Why a recommendation was made, in one sentence (the app words the same facts through Qt)."""
    w = Words(lang)
    plan = choice.plan
    speed = speed_words(plan, w)
    quality = (w("{quant} is below the usual Q4_K_M floor, the most of this model that fits", quant=choice.quant)
               if choice.below_floor else w("{quant} is the best quality that fits", quant=choice.quant))
    ctx = f"{choice.n_ctx // 1024}K" if choice.n_ctx >= 1024 else str(choice.n_ctx)
    names = " + ".join(choice.gpu_names)
    slow = choice.tier == recommend_mod.TIER_SLOW
    if choice.tier == recommend_mod.TIER_GPU:
        used = sum(d.total for d in plan.gpus)
        budget = sum(d.budget or 0 for d in plan.gpus)
        return w("Runs entirely on {gpus} ({used} of {budget} usable with a {ctx} context), {speed}; "
                 "{quality} with room to spare.", gpus=names, used=human_bytes(used), budget=human_bytes(budget),
                 ctx=ctx, speed=speed, quality=quality)
    if plan.mode == "partial":
        text = w("{k} of {n} layers on {gpus} ({gpu}), the rest in RAM ({ram}), {speed}; {quality}",
                 k=plan.offloaded_layers, n=plan.n_layer, gpus=names, gpu=human_bytes(plan.gpu_bytes),
                 ram=human_bytes(plan.ram_bytes), speed=speed, quality=quality)
        return text + (w("; slow, but nothing faster of this quality fits.") if slow else w("."))
    where = w("unified memory") if choice.unified_memory else w("RAM")
    text = w("Runs on the CPU in {where} ({ram} of {budget} usable), {speed}; {quality}",
             where=where, ram=human_bytes(plan.ram_bytes), budget=human_bytes(plan.cpu.budget or 0), speed=speed,
             quality=quality)
    return text + (w("; slow, but it is what fits.") if slow else w("."))


def plan_words(plan, w: Words) -> str:
    """A plan in one sentence, in the chosen language (engine.fit.Plan.describe is the English for errors)."""
    gb = human_bytes
    speed = (w(", ") + speed_words(plan, w)) if plan.tokens_per_second else ""
    if plan.mode == "gpu":
        where = " + ".join(w("{size} on {device}", size=gb(d.total), device=d.device) for d in plan.gpus)
        return w("Everything on the GPU ({where}; {ram} of RAM){speed}", where=where, ram=gb(plan.ram_bytes),
                 speed=speed)
    if plan.mode == "partial":
        where = " + ".join(w("{layers} on {device}", layers=d.layers, device=d.device) for d in plan.gpus)
        return w("{k} of {n} layers on the GPU ({where}), the rest in RAM ({gpu} GPU + {ram} RAM){speed}",
                 k=plan.offloaded_layers, n=plan.n_layer, where=where, gpu=gb(plan.gpu_bytes),
                 ram=gb(plan.ram_bytes), speed=speed)
    if plan.mode == "cpu":
        return w("On the CPU, in RAM ({ram}){speed}", ram=gb(plan.ram_bytes), speed=speed)
    return w("Does not fit: {what}", what=_short_words(plan, w))


def _short_words(plan, w: Words) -> str:
    gb = human_bytes
    short = []
    for d in plan.devices:
        if d.fits:
            continue
        facts = {"device": d.device, "need": gb(d.total), "budget": gb(d.budget or 0)}
        short.append(w("{device} needs {need} of the {budget} usable", **facts) if plan.planning else
                     w("{device} needs {need} of the {budget} usable now", **facts))
    if plan.unified_budget is not None and plan.unified_total is not None and plan.unified_total > plan.unified_budget:
        facts = {"need": gb(plan.unified_total), "budget": gb(plan.unified_budget)}
        short.append(w("memory needs {need} of the {budget} usable", **facts) if plan.planning else
                     w("memory needs {need} of the {budget} usable now", **facts))
    return w("; ").join(short or [w("not enough memory")])


def right_now(now, machine, w: Words) -> str:
    """Whether the model would load right now, with what is free (the model host's own check)."""
    free = human_bytes(machine.ram_available)
    if now.fits:
        return w("Right now: it would load ({free} of RAM free).", free=free)
    return w("Right now: it would not load ({free} of RAM free; {what}); close other programs first.",
             free=free, what=_short_words(now, w))


def note_words(note, w: Words) -> str:
    kind = getattr(note, "kind", None)
    values = getattr(note, "values", {})
    if kind == "kv_needs_flash_attn":
        return w("a quantised KV cache needs flash attention; llama.cpp refuses it otherwise")
    if kind == "ctx_beyond_training":
        return w("context {n_ctx} is longer than the model was trained for ({n_ctx_train})",
                 n_ctx=f"{values['n_ctx']:,}", n_ctx_train=f"{values['n_ctx_train']:,}")
    if kind == "no_usable_gpu":
        return w("no GPU this llama.cpp build can use: every layer stays in RAM")
    if kind == "flash_attn_saves":
        return w("flash attention would save about {size} at this context", size=human_bytes(values["saved"]))
    return str(note)


def budget_lines(hw, w: Words) -> list[str]:
    """What this machine can give a model, per device: the budget every verdict here is against."""
    total, reserve = hw.ram_total, fit.ram_reserve(hw)
    lines = [w("Usable for a model: {usable} of RAM ({total} minus {kept} kept for the system and other programs)",
               usable=human_bytes(fit.ram_budget(hw, planning=True)), total=human_bytes(total),
               kept=human_bytes(reserve))]
    for g in hw.usable_gpus():
        if g.unified:
            continue  # Metal's share is in the RAM above; its own limit shows in the table
        lines.append(w("Usable for a model on {gpu}: {usable} of its {total} of video memory",
                       gpu=g.name, usable=human_bytes(fit.gpu_budget(g, planning=True)), total=human_bytes(g.total)))
    return lines


def kernel_words(build, w: Words) -> str:
    """Which CPU kernels llama.cpp runs: the variant chosen for this CPU, or the one fixed set."""
    features = ", ".join(f for f in build.cpu_features if f not in ("OPENMP", "REPACK", "LLAMAFILE"))
    if build.cpu_variants and build.cpu_variant in build.cpu_variants:
        return w("CPU kernels: {variant} ({features}), chosen for this CPU from {count} variants",
                 variant=build.cpu_variant, features=features or w("none"), count=len(build.cpu_variants))
    if build.cpu_variant:
        return w("CPU kernels: {variant}", variant=build.cpu_variant)
    return w("CPU kernels: one fixed set, built for {features}", features=features or w("none"))


def describe(hw, lang: str | None = "en") -> list[str]:
    """Lines for ``r1desk hw``."""
    w = Words(lang)
    gb = human_bytes
    rows = [(w("Machine"), (hw.os or w("unknown OS"))
             + (w("  (profile: {name})", name=hw.source) if hw.source != "detected" else ""))]
    rows.append((w("CPU"), w("{name} — {cores} cores / {threads} threads", name=hw.cpu.name,
                             cores=hw.cpu.physical_cores, threads=hw.cpu.logical_cores)
                 + (w("; {flags}", flags=", ".join(hw.cpu.flags)) if hw.cpu.flags else "")))
    ram = w("{total} total", total=gb(hw.ram_total))
    if hw.ram_available is not None:
        ram += w(", {free} available", free=gb(hw.ram_available))
    rows.append((w("RAM"), ram))
    planned, now = fit.ram_budget(hw, planning=True), fit.ram_budget(hw)
    usable = w("{usable} for a model ({kept} kept for the system and other programs)",
               usable=gb(planned), kept=gb(fit.ram_reserve(hw)))
    if hw.ram_available is not None and now != planned:
        usable += w("; {now} right now", now=gb(now))
    rows.append(("", usable))
    if not hw.gpus:
        rows.append((w("GPU"), w("none found")))
    usable_gpus = hw.usable_gpus()
    for g in hw.gpus:
        extra = []
        if g.unified:
            extra.append(w("unified memory, Metal may use {size}", size=gb(g.working_set or 0)))
        else:
            extra.append(w("{total} VRAM, {free} free", total=gb(g.total), free=gb(g.free)))
        if g.driver:
            extra.append(w("driver {version}", version=g.driver))
        if g.cuda_version:
            extra.append(f"CUDA {g.cuda_version}")
        if g.compute_capability:
            extra.append(w("compute {version}", version=g.compute_capability))
        if g in usable_gpus:
            state = w("usable; {size} for a model", size=gb(fit.gpu_budget(g, planning=True)))
        else:
            state = w("NOT usable by this build")
        rows.append((w("GPU {index}", index=g.index), f"{g.name} ({w('; ').join(extra)}) — {state}"))
    b = hw.build
    engine = w("backends {backends}; GPU offload {offload}", backends=", ".join(b.backends) or w("none"),
               offload=w("yes") if b.gpu_offload else w("no"))
    if b.version:
        engine += w("; llama-cpp-python {version}", version=b.version)
    rows.append(("llama.cpp", engine))
    if b.cpu_variant or b.cpu_features:
        rows.append(("", kernel_words(b, w)))
    if b.system_info:
        rows.append(("", b.system_info))
    for note in hw.notes:
        rows.append((w("Note"), note))  # the probe's own words
    return [w.row(label, text) for label, text in rows]
