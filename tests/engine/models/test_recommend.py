"""Recommendations: what each described machine gets, and that every recommendation fits it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1desk.cli.hardware import why
from r1desk.engine.gguf import quants
from r1desk.engine.hardware import fit
from r1desk.engine.hardware.probe import CPU, Build, Hardware
from r1desk.engine.models import catalog as C
from r1desk.engine.models import recommend

GiB = 1024**3
PROFILES = Path(__file__).resolve().parents[2] / "data" / "profiles"
ORDER = ["gpu", "partial", "cpu", "slow"]


def _profiles():
    return sorted(PROFILES.glob("*.json"))


@pytest.fixture(scope="module")
def shipped_catalog():
    return C.load(C.CATALOG_PATH)


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.stem)
def test_each_profile_gets_its_recommendation(profile, shipped_catalog):
    hw = Hardware.load(profile)
    expect = json.loads(profile.read_text())["expect"]
    choices = recommend.recommend(hw, expect["n_ctx"], shipped_catalog)
    top = choices[0]
    assert (top.model_id, top.quant, top.tier) == (expect["model_id"], expect["quant"], expect["tier"]), \
        f"{top.model_id} {top.quant} [{top.tier}]: {why(top)}"
    assert top.files and top.size > 0
    assert len(top.gpu_names) == len(top.plan.gpus) and top.below_floor == quants.below_floor(top.quant)
    # The top choice is the best quant of its model that fits in its tier (nothing better was skipped).
    model = shipped_catalog.get(top.model_id)
    better = [q for q in model.quants if quants.rank(q.quant) < quants.rank(top.quant)
              and quants.allowed_for(q.quant, model.params, cpu_only=not hw.usable_gpus())]
    for q in better:
        plan = fit.estimate(C.info_for(model, q.quant), n_ctx=top.n_ctx, hardware=hw, planning=True)
        assert not plan.fits or ORDER.index(recommend.tier_of(plan)) > ORDER.index(top.tier), q.quant


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.stem)
@pytest.mark.parametrize("n_ctx", [2048, 32768])
def test_every_recommendation_fits_its_machine(profile, n_ctx, shipped_catalog):
    hw = Hardware.load(profile)
    choices = recommend.recommend(hw, n_ctx, shipped_catalog)
    assert choices, "something always fits: the catalog has a 1.5B model"
    tiers = [c.tier for c in choices]
    assert [ORDER.index(t) for t in tiers] == sorted(ORDER.index(t) for t in tiers)
    cpu_only = not hw.usable_gpus()
    for c in choices:
        model = shipped_catalog.get(c.model_id)
        # Recomputed independently: every device within its budget.
        plan = fit.estimate(C.info_for(model, c.quant), n_ctx=c.n_ctx, hardware=hw, planning=True)
        assert plan.fits and plan.n_gpu_layers == c.plan.n_gpu_layers
        for d in plan.devices:
            assert d.budget is not None and d.total <= d.budget
        if plan.unified_budget is not None:
            assert plan.unified_total <= plan.unified_budget
        assert c.quant not in quants.NEVER_RECOMMENDED
        assert quants.allowed_for(c.quant, model.params, cpu_only=cpu_only)
        assert c.n_ctx == min(n_ctx, model.arch.n_ctx_train)
    assert len({c.model_id for c in choices}) == len(choices)


def test_a_machine_too_small_for_anything_gets_nothing(shipped_catalog):
    tiny = Hardware(os="test", cpu=CPU(), ram_total=2 * GiB, build=Build())
    assert recommend.recommend(tiny, 8192, shipped_catalog) == []


def test_why_is_worded_from_the_facts(shipped_catalog):
    """The engine gives facts; the command line words them (the app does the same through Qt)."""
    for name, start in [("nvidia-8gb", "Runs entirely on NVIDIA"), ("cpu-16gb", "Runs on the CPU in RAM"),
                        ("apple-m2-16gb", "Runs entirely on Apple")]:
        top = recommend.recommend(Hardware.load(PROFILES / f"{name}.json"), 8192, shipped_catalog)[0]
        text = why(top)
        assert text.startswith(start) and top.quant in text, (name, text)
