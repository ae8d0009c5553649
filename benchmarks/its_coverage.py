"""Coverage of evalkit's ITS intervals on short simulated series (issue 19, item 2).

For each cell of the grid (family x series length x lag-1 autocorrelation) the script
simulates seeded series with a known level change, slope change, observed/expected ratio
and cumulative effect, fits them with :func:`evaluation.its.fit` under each inference
method, and prints

* the coverage of the 95% intervals of the level change, the slope change, the ratio of
  observed to expected events after the interruption (the headline) and the cumulative
  effect (observed minus expected events), and
* with no true effect, how often the headline's verdict is "improved" or "worsened".

Data-generating process (``simulate``): ``n`` periods, the interruption after
``ceil(n / 2)`` (``n = 21``: 12 before and 9 after, the demo's termly series), counts
``y_t ~ Poisson(mu_t exp(u_t - s^2 / 2))`` with ``log mu_t = log(roll * 0.02) + 0.01 t +
level D_t + slope P_t`` and ``u`` a stationary gaussian AR(1) with lag-1 correlation
``rho`` and SD ``s``:

* ``poisson``: ``s = 0`` at ``rho = 0`` (pure Poisson), else ``s`` giving a dispersion of
  1.25 (near-Poisson; the counts' own lag-1 autocorrelation is then about ``rho / 5``);
* ``overdispersed``: dispersion 5 (``1 + mean(mu) s^2 = 5``, about the demo's 4.4), the
  latent ``rho`` scaled by 5/4 so that the counts' lag-1 autocorrelation is ``rho``;
* ``gaussian``: ``y_t = 10 + 0.05 t + level D_t + slope P_t + e_t``, ``e`` AR(1), SD 1.

The truths are those of the mean model: ``exp(level)``, ``exp(slope)``, ``sum mu1 / sum
mu0`` and ``sum (mu1 - mu0)`` over the post-interruption periods (mu1 with the effect,
mu0 without). Effects: level -0.2 and slope -0.01 (log scale; gaussian -1 and -0.05), and
0 for the false-verdict table.

Run: python benchmarks/its_coverage.py [--reps 1000] [--methods ar1,newey-west,wald]
[--margin 0.5] (the last tries another ``its.AR1_RHO_MARGIN``)
(about 6 minutes for 400 replicates per cell on one core).

Controlled ITS (``--controlled``; issue 19, items 2 and 3): the inference of
:func:`evaluation.controlled_its.fit` for its default. ``simulate_panel`` makes termly
suspensions as ``evaluation.demo`` does (21 terms, interruption after 12, school effects,
term seasonality, a common -10% change at the interruption, a log-normal overdispersion
multiplier with SD 0.22 following a latent AR(1) with lag-1 correlation ``rho`` within
each school), for the demo's 21 programme and 12 comparison schools (two thirds primary)
and for 1 or 3 programme schools against 5 to 20 (secondary, or mixed); the programme
level change is 0.75 (0 for the false-verdict column). ``fit_panel`` fits each replicate
once per design and applies each candidate of :data:`PANEL_METHODS` (Linden's ``itsa``
as published; ``itsa`` with unit effects; cluster-robust by unit with t on G - 1 df;
the kit's AR(1) with each unit's dispersion), using the kit's own functions.
Run: OMP_NUM_THREADS=1 python benchmarks/its_coverage.py --controlled --reps 300
(about 9 minutes on one core; with several BLAS threads on a shared machine it is far
slower; ``--methods ar1 --reps 2000``, the default alone, about 10 minutes). Result
(coverage of the difference in level change, the difference in slope change and the
headline ratio; false verdicts: a null effect called improved or worsened; the column
``false_verdict_normal`` is the same with normal critical values, what the df add):

======================  =========================  ==============  ============
method                  coverage (min - max)       false verdicts  replicates
======================  =========================  ==============  ============
ar1 (the default)       0.945 - 0.994              0.006 - 0.048   2,000
ar1, earlier df         0.941 - 0.987              0.015 - 0.057   2,000
itsa (Linden)           0.80 - 0.96 (1 programme)  0.047 - 0.18    300
                        0.97 - 1.00 (3 or 21)      0.000 - 0.020
itsa + unit effects     0.75 - 0.95                0.063 - 0.23    300
cluster by unit         0.81 - 0.93 (3 or 21)      0.060 - 0.16    300
                        0.29 - 0.69 (1)            0.32 - 0.65
======================  =========================  ==============  ============

Monte Carlo SE of a rate near 0.95 or 0.05: 0.005 with 2,000 replicates, 0.013 with 300.
"ar1, earlier df": Satterthwaite df for the units' dispersions only, not for the
estimated autocorrelation (see ``evaluation.controlled_its._ar1_panel_covariance``); its
worst cells were 3 programme against 20 schools (5.7%) and the demo's shape (5.2%) at
rho 0.4, now 4.75% and 4.8%. Its 7.0% in the 300-replicate table (3 against 5 schools,
rho 0.2) was Monte Carlo error: 4.55% in 2,000 and 4.5% in 5,000 replicates (same seed).

A gaussian outcome (``schools="gaussian"``: a rate per unit and term with AR(1) errors and
each unit its own SD, :func:`simulate_gaussian_panel`; shapes 1/5, 1/20, 3/20 and 21/12):
``ar1`` covered 0.956 - 0.991 with 0.9% - 4.2% false verdicts (2,000 replicates per
cell, rho 0, 0.2 and 0.4; with the earlier df 0.949 - 0.983 and 1.9% - 4.4%); with 200
replicates per cell at rho 0 and 0.4, ``itsa`` 0.83 - 1.00 (0.83 - 0.87 and 10% false
verdicts with one programme unit against 20 at rho 0.4); ``itsa`` with unit effects
0.70 - 0.97; ``cluster`` 0.38 - 0.74 with one programme unit and 0.85 - 0.99 with 3 or 21.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from evaluation import controlled_its, its
from evaluation.results import verdict

QUANTITIES = ("level", "slope", "ratio", "cumulative")


def simulate(rng: np.random.Generator, n: int, rho: float, kind: str, level: float,
             slope: float, roll: float = 10000.0) -> tuple[pd.DataFrame, dict, pd.Timestamp]:
    """One series (monthly dates), its true effects and the interruption date."""
    t = np.arange(1, n + 1, dtype=float)
    t0 = int(np.ceil(n / 2)) + 1
    post = t >= t0
    D, P = post.astype(float), np.maximum(t - t0, 0.0)
    dates = pd.date_range("2015-01-01", periods=n, freq="MS")
    # latent AR(1) (stationary start)
    if kind == "gaussian":
        lat_rho, sd = rho, 1.0
    else:
        mean_mu = roll * 0.02 * np.exp(0.01 * n / 2)
        disp = 5.0 if kind == "overdispersed" else (1.25 if rho > 0 else 1.0)
        sd = np.sqrt((disp - 1) / mean_mu)
        lat_rho = min(rho * disp / (disp - 1), 0.95) if kind == "overdispersed" else rho
    e = np.empty(n)
    e[0] = rng.normal(0, sd)
    innov = rng.normal(0, sd * np.sqrt(1 - lat_rho**2), n)
    for i in range(1, n):
        e[i] = lat_rho * e[i - 1] + innov[i]
    if kind == "gaussian":
        mu0 = 10 + 0.05 * t
        mu1 = mu0 + level * D + slope * P
        y = mu1 + e
        truth = {"level": level, "slope": slope,
                 "cumulative": float(np.sum((mu1 - mu0)[post]))}
        truth["ratio"] = float(np.sum(mu1[post]) / np.sum(mu0[post]))
        df = pd.DataFrame({"month": dates, "y": y})
    else:
        mu0 = roll * np.exp(np.log(0.02) + 0.01 * t)
        mu1 = mu0 * np.exp(level * D + slope * P)
        y = rng.poisson(mu1 * np.exp(e - sd**2 / 2))
        truth = {"level": np.exp(level), "slope": np.exp(slope),
                 "ratio": float(np.sum(mu1[post]) / np.sum(mu0[post])),
                 "cumulative": float(np.sum((mu1 - mu0)[post]))}
        df = pd.DataFrame({"month": dates, "y": y, "roll": roll})
    return df, truth, dates[t0 - 1]


def one_fit(df: pd.DataFrame, when: pd.Timestamp, kind: str, method: str) -> dict:
    """Intervals and headline verdict of one fit."""
    gaussian = kind == "gaussian"
    kw: dict = dict(time="month", outcome="y", interruption=when,
                    family="gaussian" if gaussian else "poisson", inference=method)
    if not gaussian:
        kw["exposure"] = "roll"
    if method in ("newey-west", "wald"):
        kw["autocorrelation"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = its.fit(df, **kw)
    e = r.effects_data  # the effects table's columns, without building the DataFrame
    cu = {k: v[0] for k, v in r.cumulative_data.items()}
    h = r.headline()
    lv, sl = e["term"].index("level change"), e["term"].index("slope change")
    out = {"level": (e["ci_low"][lv], e["ci_high"][lv]),
           "slope": (e["ci_low"][sl], e["ci_high"][sl]),
           "cumulative": (cu["ci_low"], cu["ci_high"]), "verdict": h["verdict"]}
    if gaussian:  # the ratio of totals of a gaussian outcome: the same delta method
        est = cu["observed_total"] / cu["counterfactual_total"]
        half = cu["crit_log_ratio"] * cu["se_log_ratio"]
        out["ratio"] = (est * np.exp(-half), est * np.exp(half))
    else:
        out["ratio"] = (h["ci_low"], h["ci_high"])
    return out


def run_cell(kind: str, n: int, rho: float, method: str, reps: int, seed: int,
             null: bool = False) -> dict:
    """Coverage of each quantity (effect present) or the false-verdict rate (null)."""
    rng = np.random.default_rng(seed)
    level, slope = (0.0, 0.0) if null else ((-1.0, -0.05) if kind == "gaussian"
                                            else (-0.2, -0.01))
    hits = dict.fromkeys(QUANTITIES, 0)
    false = 0
    for _ in range(reps):
        df, truth, when = simulate(rng, n, rho, kind, level, slope)
        res = one_fit(df, when, kind, method)
        for q in QUANTITIES:
            lo, hi = res[q]
            hits[q] += lo <= truth[q] <= hi
        false += res["verdict"] != "no clear change"
    out = {q: hits[q] / reps for q in QUANTITIES}
    out["false_verdict"] = false / reps
    return out


# ----------------------------------------------------------------------------- controlled

#: Inference methods of a controlled ITS compared (evaluation.controlled_its): Linden's
#: itsa as published, itsa with unit effects, cluster-robust by unit and AR(1) by unit.
PANEL_METHODS = {"itsa": ("itsa", False), "itsa+unit": ("itsa", True),
                 "cluster": ("cluster", True), "ar1": ("ar1", True)}
PANEL_QUANTITIES = ("level", "slope", "ratio")
PANEL_PERIODS, PANEL_PRE = 21, 12  # the demo's termly series: 12 terms before, 9 after


@dataclass
class PanelDraw:
    """One simulated panel: rows in (unit, period) order, true effects, the design."""

    y: np.ndarray
    offset: np.ndarray
    z: np.ndarray
    unit_id: np.ndarray
    codes: np.ndarray
    truth: dict
    family: str = "poisson"


def simulate_panel(rng: np.random.Generator, n_prog: int, n_comp: int, rho: float,
                   level: float, schools: str = "mixed") -> PanelDraw:
    """Termly suspensions of ``n_prog`` programme and ``n_comp`` comparison schools over
    21 terms, the interruption after 12, as ``evaluation.demo`` makes them: roll 200-400
    (primary, 0.5 suspensions per 100 a term) or 650-1,100 (secondary, 4.3 per 100),
    two thirds primary (``schools="mixed"``; ``"secondary"``: all secondary), a school
    effect N(0, 0.35) on the log rate (+0.15 for programme schools), a trend of 3% a
    year, term seasonality 1 / 1.1 / 0.85, a common change of -10% at the interruption
    (so that the comparison matters) and a programme level change ``level`` (log scale).
    Overdispersion: a log-normal multiplier per school and term, SD 0.22 on the log
    scale (the demo's gamma shape 20), following a stationary AR(1) with lag-1
    correlation ``rho`` within each school."""
    n_units = n_prog + n_comp
    T = PANEL_PERIODS
    z = np.r_[np.ones(n_prog, dtype=np.int64), np.zeros(n_comp, dtype=np.int64)]
    secondary = (rng.random(n_units) < 1 / 3) if schools == "mixed" else np.ones(n_units, bool)
    roll = np.where(secondary, rng.integers(650, 1101, n_units), rng.integers(200, 401, n_units))
    base = np.where(secondary, 13.0, 1.5) / 100 / 3
    re = rng.normal(0.0, 0.35, n_units) + 0.15 * z
    t = np.arange(T)
    season = np.array([1.0, 1.1, 0.85])[t % 3]
    post = (t >= PANEL_PRE).astype(float)
    log_mu0 = (np.log(roll * base)[:, None] + re[:, None] + np.log(1.03) * t / 3
               + np.log(season) + np.log(0.9) * post)
    log_mu1 = log_mu0 + level * z[:, None] * post
    sd = 0.22
    u = np.empty((n_units, T))
    u[:, 0] = rng.normal(0, sd, n_units)
    innov = rng.normal(0, sd * np.sqrt(1 - rho**2), (n_units, T))
    for i in range(1, T):
        u[:, i] = rho * u[:, i - 1] + innov[:, i]
    y = rng.poisson(np.exp(log_mu1 + u - sd**2 / 2))
    truth = {"level": np.exp(level), "slope": 1.0, "ratio": np.exp(level)}
    return PanelDraw(y=y.ravel().astype(float), offset=np.repeat(np.log(roll), T).astype(float),
                     z=np.repeat(z, T), unit_id=np.repeat(np.arange(n_units), T),
                     codes=np.tile(t, n_units), truth=truth)


def simulate_gaussian_panel(rng: np.random.Generator, n_prog: int, n_comp: int, rho: float,
                            level: float, periods: int = PANEL_PERIODS) -> PanelDraw:
    """A rate (e.g. attendance %) per unit and term: 90 + a unit effect N(0, 3) + a trend of
    -0.05 a term + term seasonality (0, -0.5, +0.3) + a common change of -1 at the
    interruption + the programme's ``level`` change, with AR(1) errors of lag-1
    correlation ``rho`` and a unit's own SD (log-normal around 1, SD 0.5 on the log
    scale: units of different sizes are differently noisy). ``periods`` terms, the
    interruption after the first ``PANEL_PRE``."""
    n_units = n_prog + n_comp
    z = np.r_[np.ones(n_prog, dtype=np.int64), np.zeros(n_comp, dtype=np.int64)]
    t = np.arange(periods)
    post = (t >= PANEL_PRE).astype(float)
    mean = (90 + rng.normal(0, 3, n_units)[:, None] - 0.05 * t
            + np.array([0.0, -0.5, 0.3])[t % 3] - 1.0 * post + level * z[:, None] * post)
    sd = np.exp(rng.normal(0, 0.5, n_units))[:, None]
    e = np.empty((n_units, periods))
    e[:, 0] = rng.normal(0, 1, n_units)
    for i in range(1, periods):
        e[:, i] = rho * e[:, i - 1] + np.sqrt(1 - rho**2) * rng.normal(0, 1, n_units)
    y = mean + sd * e
    return PanelDraw(y=y.ravel(), offset=np.zeros(y.size), z=np.repeat(z, periods),
                     unit_id=np.repeat(np.arange(n_units), periods),
                     codes=np.tile(t, n_units),
                     truth={"level": level, "slope": 0.0, "ratio": level},
                     family="gaussian")


def _panel_design(d: PanelDraw, unit_effects: bool) -> np.ndarray:
    X = controlled_its._design(d.codes, d.z, 0, PANEL_PRE)
    term = d.codes % 3
    X = np.column_stack([X, term == 1, term == 2]).astype(float)
    if unit_effects:
        X = np.column_stack([X, controlled_its._unit_effects(d.unit_id, d.z)[0]])
    return X


def fit_panel(d: PanelDraw, methods: list[str], confidence: float = 0.95) -> dict:
    """Per method of :data:`PANEL_METHODS`: the intervals of the difference in level
    change, the difference in slope change and the headline ratio (observed over
    controlled-expected events), and the verdict, with the kit's own functions
    (``evaluation.controlled_its``: the estimate, the covariance and the headline's delta
    method), the headline's t statistic and its verdict. Each model is fitted once and
    shared by the methods that use it."""
    out: dict = {}
    fitted: dict = {}
    count = d.family == "poisson"
    inv = np.exp if count else (lambda v: v)
    for method in methods:
        inference, unit_effects = PANEL_METHODS[method]
        if unit_effects not in fitted:
            X = _panel_design(d, unit_effects)
            fitted[unit_effects] = (X, *controlled_its._estimate(d.family, d.y, X, d.offset))
        X, _, b, mu, w = fitted[unit_effects]
        V, df, _ = controlled_its._covariance(inference, d.family, d.y, X, mu, w, 1,
                                              d.unit_id, d.codes)
        crit = float(stats.t.ppf(1 - (1 - confidence) / 2, df))
        res = {}
        for q, j in (("level", 6), ("slope", 7)):
            se = np.sqrt(V[j, j])
            res[q] = (inv(b[j] - crit * se), inv(b[j] + crit * se))
        sel = (d.z == 1) & (d.codes >= PANEL_PRE)
        Xs = X[sel]
        Xcf = Xs.copy()
        Xcf[:, [6, 7]] = 0.0
        if count:  # the headline: observed over controlled-expected events
            m1, m0 = np.exp(Xs @ b + d.offset[sel]), np.exp(Xcf @ b + d.offset[sel])
            grad = (m1 @ Xs) / m1.sum() - (m0 @ Xcf) / m0.sum()
            est = np.log(m1.sum() / m0.sum())
        else:  # the mean difference from the controlled counterfactual
            grad = (Xs - Xcf).mean(axis=0)
            est = grad @ b
        se = np.sqrt(grad @ V @ grad)
        lo, hi = inv(est - crit * se), inv(est + crit * se)
        res["ratio"] = (lo, hi)
        res["t"] = est / se
        res["verdict"] = verdict(lo, hi, null=1.0 if count else 0.0,
                                 direction="lower_is_better")
        out[method] = res
    return out


def run_panel_cell(n_prog: int, n_comp: int, rho: float, methods: list[str], reps: int,
                   seed: int, schools: str = "mixed", null: bool = False) -> dict:
    """Per method: the coverage of each quantity (effect present: the demo's level change
    of 0.75, or -3 points for ``schools="gaussian"``) or the false-verdict rate (null),
    and ``false_verdict_normal``, the rate had the headline used normal critical values
    (its df taken as infinite: what its df contribute); the same draws for every
    method."""
    rng = np.random.default_rng(seed)
    gaussian = schools == "gaussian"
    level = 0.0 if null else (-3.0 if gaussian else np.log(0.75))
    hits = {m: dict.fromkeys(PANEL_QUANTITIES, 0) for m in methods}
    false = dict.fromkeys(methods, 0)
    normal = dict.fromkeys(methods, 0)
    z = float(stats.norm.ppf(0.975))
    done = 0
    while done < reps:
        d = (simulate_gaussian_panel(rng, n_prog, n_comp, rho, level) if gaussian
             else simulate_panel(rng, n_prog, n_comp, rho, level, schools))
        try:
            fits = fit_panel(d, methods)
        except Exception:  # e.g. a Poisson fit that does not converge: draw again
            continue
        done += 1
        for m, res in fits.items():
            for q in PANEL_QUANTITIES:
                lo, hi = res[q]
                hits[m][q] += lo <= d.truth[q] <= hi
            false[m] += res["verdict"] != "no clear change"
            normal[m] += abs(res["t"]) > z
    return {m: {**{q: hits[m][q] / reps for q in PANEL_QUANTITIES},
                "false_verdict": false[m] / reps, "false_verdict_normal": normal[m] / reps}
            for m in methods}


PANEL_SHAPES = ((21, 12, "mixed"), (1, 5, "secondary"), (1, 20, "secondary"),
                (3, 5, "secondary"), (3, 20, "secondary"), (1, 12, "mixed"),
                (21, 12, "gaussian"), (1, 5, "gaussian"), (1, 20, "gaussian"),
                (3, 20, "gaussian"))


def panel_seed(n_prog: int, n_comp: int, rho: float) -> int:
    """The seed of a cell's effect replicates (its null replicates: the seed + 1)."""
    return 100_000 + 1000 * n_prog + 10 * n_comp + int(rho * 10)


def main_controlled(reps: int, methods: list[str], rhos: list[float]) -> None:
    rows = []
    start = time.perf_counter()
    for n_prog, n_comp, schools in PANEL_SHAPES:
        for rho in rhos:
            seed = panel_seed(n_prog, n_comp, rho)
            cov = run_panel_cell(n_prog, n_comp, rho, methods, reps, seed, schools)
            nul = run_panel_cell(n_prog, n_comp, rho, methods, reps, seed + 1, schools, True)
            for m in methods:
                rows.append({"method": m, "programme": n_prog, "comparison": n_comp,
                             "schools": schools, "rho": rho,
                             **{q: cov[m][q] for q in PANEL_QUANTITIES},
                             "false_verdict": nul[m]["false_verdict"],
                             "false_verdict_normal": nul[m]["false_verdict_normal"]})
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=False),
                      flush=True)
    table = pd.DataFrame(rows)
    mc = np.sqrt(0.95 * 0.05 / reps)
    print(f"\n{reps} replicates per cell; Monte Carlo SE of a coverage near 0.95: "
          f"{mc:.3f}. {time.perf_counter() - start:.0f} s.\n")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.sort_values(["method", "programme", "comparison", "rho"]).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--methods", default="ar1,newey-west,wald")
    ap.add_argument("--lengths", default="12,21,36,60")
    ap.add_argument("--rhos", default="0,0.2,0.4")
    ap.add_argument("--kinds", default="poisson,overdispersed,gaussian")
    ap.add_argument("--margin", type=float, default=its.AR1_RHO_MARGIN,
                    help="AR1_RHO_MARGIN to try (default: the kit's)")
    ap.add_argument("--controlled", action="store_true",
                    help="the controlled ITS grid (methods: " + ", ".join(PANEL_METHODS) + ")")
    a = ap.parse_args()
    if a.controlled:
        methods = (list(PANEL_METHODS) if a.methods == "ar1,newey-west,wald"
                   else a.methods.split(","))
        main_controlled(a.reps, methods, [float(r) for r in a.rhos.split(",")])
        return
    its.AR1_RHO_MARGIN = a.margin  # read at each fit, so this tries another margin
    rows = []
    start = time.perf_counter()
    for method in a.methods.split(","):
        for kind in a.kinds.split(","):
            for n in map(int, a.lengths.split(",")):
                for rho in map(float, a.rhos.split(",")):
                    seed = hash((kind, n, rho)) % 2**32 if False else (
                        1000 * n + int(rho * 100) + 7 * len(kind))
                    cov = run_cell(kind, n, rho, method, a.reps, seed)
                    nul = run_cell(kind, n, rho, method, a.reps, seed + 1, null=True)
                    rows.append({"method": method, "family": kind, "n": n, "rho": rho,
                                 **{q: cov[q] for q in QUANTITIES},
                                 "false_verdict": nul["false_verdict"]})
                    print(pd.DataFrame(rows[-1:]).to_string(index=False, header=False),
                          flush=True)
    table = pd.DataFrame(rows)
    mc = np.sqrt(0.95 * 0.05 / a.reps)
    print(f"\n{a.reps} replicates per cell; Monte Carlo SE of a coverage near 0.95: "
          f"{mc:.3f}; of a false-verdict rate near 0.05: {mc:.3f}. "
          f"{time.perf_counter() - start:.0f} s.\n")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
