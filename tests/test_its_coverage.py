"""Seeded coverage simulation of evalkit's ITS intervals on short series (issue 19, items 2
and 3): the single-series fit here, the controlled ITS's default at the end of the file.

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


# ------------------------------------------------------------------ controlled ITS
#
# The controlled ITS's default inference ("ar1": AR(1) within each school, each school's
# own dispersion, Satterthwaite df; evaluation.controlled_its) on the shapes of
# benchmarks/its_coverage.py --controlled: the demo's 21 programme and 12 comparison
# schools (two thirds primary) and small designs (1 or 3 programme schools against 5 or 20
# secondary schools), 21 terms with seasonality, overdispersed counts, latent lag-1
# autocorrelation 0 or 0.4, and one gaussian cell (a rate with AR(1) errors, 1 programme
# unit against 20). Each cell has 30 replicates with the true level change (0.75; -3
# points for the rate) and 30 without; pooled over the 7 cells, 420 intervals per quantity
# (Monte Carlo SE of a coverage near 0.95: 0.011) and 210 null headlines (SE of a rate near
# 0.05: 0.015). The full table (300 replicates per cell and the other candidates) is the
# benchmark's.
PANEL_CELLS = ((21, 12, "mixed", 0.0), (21, 12, "mixed", 0.4), (1, 5, "secondary", 0.4),
               (1, 20, "secondary", 0.4), (3, 5, "secondary", 0.0), (3, 20, "secondary", 0.4),
               (1, 20, "gaussian", 0.4))
PANEL_REPS = 30


def _panel_cell(n_prog, n_comp, schools, rho, method, seed, reps=PANEL_REPS):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: threads only contend on a shared machine
        cov = sim.run_panel_cell(n_prog, n_comp, rho, [method], reps, seed, schools)
        nul = sim.run_panel_cell(n_prog, n_comp, rho, [method], reps, seed + 1, schools,
                                 null=True)
    return cov[method], nul[method]


@pytest.fixture(scope="module")
def panel_grid() -> dict:
    return {cell: _panel_cell(*cell, "ar1", 20261205 + 97 * i)
            for i, cell in enumerate(PANEL_CELLS)}


def test_controlled_default_meets_the_goal(panel_grid):
    for q in sim.PANEL_QUANTITIES:
        # effect and null replicates both have a truth to cover
        coverage = np.mean([(c[q] + n[q]) / 2 for c, n in panel_grid.values()])
        assert coverage >= 0.92, (q, coverage)
    false = np.mean([n["false_verdict"] for _, n in panel_grid.values()])
    assert false <= 0.05, false
    for cell, (c, n) in panel_grid.items():
        for q in sim.PANEL_QUANTITIES:
            assert (c[q] + n[q]) / 2 >= 0.80, (cell, q)
        assert n["false_verdict"] <= 0.20, cell


# The goal per cell: no design calls a null effect a change in more than 5% of projects.
# The benchmark's worst cells (2,000 null replicates each, Monte Carlo SE 0.005) are the
# demo's shape (4.80%) and 3 programme against 20 secondary schools (4.75%), both at a
# latent autocorrelation of 0.4. The second is re-run here on the benchmark's own draws
# (its seed, all 2,000 replicates, about 12 s), so the rate tested is the figure the module
# docstring reports, held to the goal itself with no allowance added. What a pass shows,
# honestly: an estimate of 4.75% with SE 0.5%, so a true rate just above 5% is not
# excluded by this test alone (5,000 further draws gave 4.1%); a method whose true rate is
# 6% or more fails with probability about 0.97. The same draws with normal critical
# values (infinite df: close to the earlier Satterthwaite df, which ignored that rho is
# estimated, 48 here) exceed the goal (6.05%; the earlier df themselves gave 5.7% on these
# draws), so the assertion can fail and the df are what keep the cell within it.
WORST_CELL = (3, 20, "secondary", 0.4)
WORST_REPS = 2000


def test_controlled_default_worst_cell_calls_at_most_5_percent_of_nulls_a_change():
    from threadpoolctl import threadpool_limits

    n_prog, n_comp, schools, rho = WORST_CELL
    with threadpool_limits(1):
        nul = sim.run_panel_cell(n_prog, n_comp, rho, ["ar1"], WORST_REPS,
                                 sim.panel_seed(n_prog, n_comp, rho) + 1, schools,
                                 null=True)["ar1"]
    assert nul["false_verdict"] <= 0.05, nul
    assert nul["false_verdict_normal"] > 0.05, nul


def test_newey_west_within_unit_misses_the_goal_with_one_programme_school():
    # Linden's itsa with unit effects (Newey-West lag 1 within each school): one programme
    # school against 20 undercovers and calls too many null effects a change
    cov, nul = _panel_cell(1, 20, "secondary", 0.4, "itsa+unit", 11, reps=40)
    assert min(cov["ratio"], nul["ratio"]) < 0.88 or nul["false_verdict"] > 0.1, (cov, nul)
