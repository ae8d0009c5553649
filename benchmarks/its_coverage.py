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
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from evaluation import its

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--methods", default="ar1,newey-west,wald")
    ap.add_argument("--lengths", default="12,21,36,60")
    ap.add_argument("--rhos", default="0,0.2,0.4")
    ap.add_argument("--kinds", default="poisson,overdispersed,gaussian")
    ap.add_argument("--margin", type=float, default=its.AR1_RHO_MARGIN,
                    help="AR1_RHO_MARGIN to try (default: the kit's)")
    a = ap.parse_args()
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
