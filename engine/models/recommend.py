"""What to download for this machine: catalog models ranked by what fits and how fast.

The reasons are facts (tier, devices, bytes, speed, quant floor); the edges word them in the
user's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from r1desk.engine.gguf import quants
from r1desk.engine.hardware.fit import (
    DECENT_TOKENS_PER_SECOND,
    ModelShape,
    Plan,
    context_for,
    estimate,
)
from r1desk.engine.models import catalog as catalog_mod

if TYPE_CHECKING:
    from r1desk.engine.hardware.probe import Hardware

TIER_GPU, TIER_PARTIAL, TIER_CPU, TIER_SLOW = "gpu", "partial", "cpu", "slow"
_TIER_ORDER = {TIER_GPU: 0, TIER_PARTIAL: 1, TIER_CPU: 2, TIER_SLOW: 3}


@dataclass
class Choice:
    """One (model, quant) on this machine, with the plan that shows whether and how it fits.

    ``tier`` is ``None`` for a choice that does not fit. ``gpu_names`` are the GPUs the plan
    uses, ``below_floor`` says the quant is under the usual Q4_K_M quality floor,
    ``unified_memory`` says RAM and GPU memory are one (Apple Silicon), and ``n_ctx_asked`` is
    the context asked for (``n_ctx`` is less when the model was trained for less): facts the
    edges word.
    """

    model_id: str
    name: str
    repo: str
    quant: str
    files: list[str]
    size: int
    size_estimated: bool
    n_ctx: int
    plan: Plan
    tier: str | None
    quality: float
    reasoning: bool = False
    gpu_names: list[str] = field(default_factory=list)
    below_floor: bool = False
    unified_memory: bool = False
    n_ctx_asked: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} {self.quant}"

    @property
    def ctx_capped(self) -> bool:
        """The context was cut to what the model was trained for."""
        return self.n_ctx < self.n_ctx_asked

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("model_id", "name", "repo", "quant", "files", "size", "size_estimated",
                                           "n_ctx", "n_ctx_asked", "ctx_capped", "tier", "reasoning", "gpu_names",
                                           "below_floor", "unified_memory")}
        d["quality"] = round(self.quality, 3)
        d["plan"] = self.plan.to_dict()
        return d


def plan_for(model: Any, quant_file: Any, hardware: "Hardware | None", n_ctx: int, *, kv_type: str = "f16",
             flash_attn: bool = False, planning: bool = True) -> Plan:
    """The plan for one catalog model in one quant file, at ``n_ctx`` (kept within its training)."""
    shape = ModelShape.from_info(catalog_mod.info_for(model, quant_file.quant))
    shape.file_size = quant_file.size
    return estimate(shape, n_ctx=context_for(shape, n_ctx), hardware=hardware, kv_type=kv_type,
                    flash_attn=flash_attn, planning=planning)


def choice_for(model: Any, quant_file: Any, hardware: "Hardware", n_ctx: int, *, kv_type: str = "f16",
               flash_attn: bool = False) -> Choice:
    """One catalog model in one quant file on this machine, whether it fits or not."""
    plan = plan_for(model, quant_file, hardware, n_ctx, kv_type=kv_type, flash_attn=flash_attn)
    return Choice(
        model_id=model.id, name=model.name, repo=model.repo, quant=quant_file.quant,
        files=list(quant_file.names), size=quant_file.size, size_estimated=quant_file.estimated,
        n_ctx=plan.n_ctx, plan=plan, tier=tier_of(plan) if plan.fits else None,
        quality=quants.quality(quant_file.quant, model.params) + getattr(model, "quality_offset", 0.0),
        reasoning=bool(getattr(model, "reasoning", False)),
        gpu_names=[gpu_label(hardware, d) for d in plan.gpus], below_floor=quants.below_floor(quant_file.quant),
        unified_memory=bool(hardware.unified_memory), n_ctx_asked=n_ctx,
    )


def recommend(hardware: "Hardware", n_ctx: int = 8192, catalog: Any = None, *, kv_type: str = "f16",
              flash_attn: bool = False, limit: int | None = None) -> list[Choice]:
    """Ranked (model, quant) choices for this machine at this context length; all of them fit.

    Order: the best quality that fits entirely on the GPU(s) with their margins; then partial
    offloads fast enough to read along (DECENT_TOKENS_PER_SECOND); then CPU-only; then
    anything slower. Within a tier, by quality (engine.gguf.quants.quality). One choice per
    model: its best quant in its best tier. Judged against total memory minus reserves
    ("planning"), since this is about what to download, not what is free this minute.
    """
    if catalog is None:
        catalog = catalog_mod.load()
    models = catalog.models if hasattr(catalog, "models") else list(catalog)
    cpu_only = not hardware.usable_gpus()
    choices: list[tuple[tuple[int, float], Choice]] = []
    for model in models:
        best: tuple[tuple[int, float], Choice] | None = None
        for qf in sorted(model.quants, key=lambda q: quants.rank(q.quant)):
            if qf.quant not in quants.QUANTS or not quants.allowed_for(qf.quant, model.params, cpu_only=cpu_only):
                continue
            choice = choice_for(model, qf, hardware, n_ctx, kv_type=kv_type, flash_attn=flash_attn)
            if choice.tier is None:
                continue
            key = (_TIER_ORDER[choice.tier], -choice.quality)
            if best is None or key < best[0]:
                best = (key, choice)
        if best is not None:
            choices.append(best)
    # Ties go to the DeepSeek-R1 family: reasoning models are what r1desk is for.
    family = {m.id: getattr(m, "family", "") for m in models}
    choices.sort(key=lambda kc: (kc[0], family.get(kc[1].model_id) != "deepseek-r1", kc[1].model_id))
    ranked = [c for _, c in choices]
    return ranked[:limit] if limit else ranked


def tier_of(plan: Plan) -> str:
    fast = (plan.tokens_per_second or 0) >= DECENT_TOKENS_PER_SECOND
    if plan.mode == "gpu":
        return TIER_GPU
    if plan.mode == "partial" and fast:
        return TIER_PARTIAL
    if plan.mode == "cpu" and fast:
        return TIER_CPU
    return TIER_SLOW


def gpu_label(hardware: "Hardware", use: Any) -> str:
    gpus = hardware.usable_gpus()
    if use.device == "Metal":
        return next((g.name for g in gpus if g.backend == "metal"), "the GPU")
    idx = int(use.device[-1]) if use.device[-1:].isdigit() else 0
    return gpus[idx].name if idx < len(gpus) else use.device
