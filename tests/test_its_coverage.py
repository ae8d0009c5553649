"""Seeded coverage simulation of evalkit's ITS intervals on short series (issue 19, item 2).

The data-generating process and the fitting are those of ``benchmarks/its_coverage.py``
(which runs the full grid with many more replicates): series of 12, 21 and 60 periods,
lag-1 autocorrelation 0 and 0.4, Poisson, overdispersed (dispersion 5) and gaussian
outcomes, fitted with the default inference (``"ar1"``).

Monte Carlo error accepted: each cell has 12 replicates with an effect (level -0.2 and
slope -0.01 on the log scale; -1 and -0.05 for gaussian) and 20 without; coverage is
counted in all 32, the false verdicts in the 20 null ones. Pooled over the 18 cells that is
576 intervals per quantity (Monte Carlo SE of a coverage near 0.95: 0.009) and 360 null
headlines (SE of a rate near 0.05: 0.011). The pooled coverage must be at least 0.92 and the
pooled false-verdict rate at most 0.05, the goals of issue 19; every cell must reach 0.78
coverage and at most 0.20 false verdicts (32 and 20 replicates: a cell at 0.92 coverage or
0.05 false verdicts passes these bounds with probability about 0.99 or more), which
catches a method that fails in one corner of the grid. The per-cell goal itself (0.92) is
checked with 400 replicates per cell by ``benchmarks/its_coverage.py``.
One cell repeated with the kit's earlier
inference (Newey-West lag 1 with z intervals) must miss the goal, so that the test can fail.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "its_coverage.py"
_spec = importlib.util.spec_from_file_location("its_coverage", _PATH)
sim = importlib.util.module_from_spec(_spec)
sys.modules["its_coverage"] = sim
_spec.loader.exec_module(sim)

KINDS = ("poisson", "overdispersed", "gaussian")
LENGTHS = (12, 21, 60)
RHOS = (0.0, 0.4)
EFFECT_REPS, NULL_REPS = 12, 20


def _cell(kind: str, n: int, rho: float, method: str, seed: int, effect_reps: int,
          null_reps: int) -> tuple[dict, int, int]:
    """Hits per quantity (all replicates), false verdicts and replicates (null ones)."""
    rng = np.random.default_rng(seed)
    effect = (-1.0, -0.05) if kind == "gaussian" else (-0.2, -0.01)
    hits = dict.fromkeys(sim.QUANTITIES, 0)
    false = 0
    for i in range(effect_reps + null_reps):
        null = i >= effect_reps
        level, slope = (0.0, 0.0) if null else effect
        df, truth, when = sim.simulate(rng, n, rho, kind, level, slope)
        res = sim.one_fit(df, when, kind, method)
        for q in sim.QUANTITIES:
            lo, hi = res[q]
            hits[q] += bool(lo <= truth[q] <= hi)
        false += null and res["verdict"] != "no clear change"
    return hits, false, null_reps


def run_grid() -> dict:
    """Every cell of the grid: (hits, false verdicts, null replicates) by (kind, n, rho)."""
    out = {}
    for k, kind in enumerate(KINDS):
        for n in LENGTHS:
            for rho in RHOS:
                seed = 20261205 + 1000 * k + 10 * n + int(rho * 10)
                out[kind, n, rho] = _cell(kind, n, rho, "ar1", seed, EFFECT_REPS, NULL_REPS)
    return out


@pytest.fixture(scope="module")
def grid() -> dict:
    return run_grid()


def test_pooled_coverage_and_false_verdicts_meet_the_goal(grid):
    total = len(grid) * (EFFECT_REPS + NULL_REPS)
    for q in sim.QUANTITIES:
        coverage = sum(h[q] for h, _, _ in grid.values()) / total
        assert coverage >= 0.92, (q, coverage)
    false = sum(f for _, f, _ in grid.values()) / sum(r for _, _, r in grid.values())
    assert false <= 0.05, false


def test_every_cell_is_near_the_goal(grid):
    reps = EFFECT_REPS + NULL_REPS
    for cell, (hits, false, null_reps) in grid.items():
        for q in sim.QUANTITIES:
            assert hits[q] / reps >= 0.78, (cell, q, hits[q] / reps)
        assert false / null_reps <= 0.20, (cell, false / null_reps)


def test_the_earlier_inference_misses_the_goal():
    # Newey-West lag 1, no small-sample factor, z intervals for counts, the observed total
    # fixed: the kit's earlier default at about the demo's settings undercovers
    hits, false, _ = _cell("overdispersed", 21, 0.4, "wald", 7, 40, 0)
    assert min(hits[q] / 40 for q in ("level", "ratio", "cumulative")) < 0.88, hits
