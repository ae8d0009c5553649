"""Benchmark: paired_change + reliable_change against a direct scipy/numpy computation.

Run: python benchmarks/bench_baseline_followup.py
Prints the time of each side (best of a few repeats) and their ratio, for 1,000,000 pupils
and for 30 pupils. Goal: ratio under 1.5 on the large case.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.baseline_followup import eef_months, paired_change, reliable_change


def direct(b: np.ndarray, f: np.ndarray) -> dict:
    """The same statistics computed straight from scipy/numpy (no checks, no tables)."""
    ok = ~np.isnan(b) & ~np.isnan(f)
    b, f = b[ok], f[ok]
    n = b.size
    d = f - b
    tt = stats.ttest_rel(f, b)
    ci = tt.confidence_interval(0.95)
    w = stats.wilcoxon(d, zero_method="wilcox")
    r = stats.pearsonr(b, f).statistic
    s1, s2 = b.std(ddof=1), f.std(ddof=1)
    dz = d.mean() / d.std(ddof=1)
    dav = d.mean() / ((s1 + s2) / 2)
    j = 1 - 3 / (4 * (n - 1) - 1)
    se = j * math.sqrt((1 / n + dav**2 / (2 * n)) * 2 * (1 - r))
    out = dict(mb=b.mean(), mf=f.mean(), s1=s1, s2=s2, t=tt.statistic, p=tt.pvalue,
               lo=ci.low, hi=ci.high, W=w.statistic, wp=w.pvalue, r=r, dz=dz, dav=dav,
               drm=dz * math.sqrt(2 * (1 - r)), g=dav * j, glo=dav * j - 1.96 * se,
               ghi=dav * j + 1.96 * se, cles=stats.norm.cdf(dz), eef=eef_months(dav * j))
    rci = d / (math.sqrt(2) * 8.0 * math.sqrt(1 - 0.9))
    cat = np.select([rci > 1.96, rci < -1.96], [0, 2], 1)
    out["rc_counts"] = np.bincount(cat, minlength=3)
    return out


def kit(df: pd.DataFrame) -> None:
    paired_change(df, "baseline", "follow_up")
    reliable_change(df, "baseline", "follow_up", reliability=0.9, sd=8.0,
                    direction="higher_is_better")


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(2024)
    for n, repeats in ((1_000_000, 3), (30, 200)):
        b = rng.normal(50, 8, n).round()
        f = (b + rng.normal(2, 5, n)).round()
        b[rng.random(n) < 0.02] = np.nan  # some pupils lack a score at one timepoint
        df = pd.DataFrame({"baseline": b, "follow_up": f})
        # same answers on both sides before timing
        s = paired_change(df, "baseline", "follow_up").summary.iloc[0]
        ref = direct(b, f)
        assert math.isclose(s["t"], ref["t"], rel_tol=1e-9)
        assert math.isclose(s["wilcoxon_p"], ref["wp"], rel_tol=1e-9, abs_tol=1e-300)
        t_kit = best(lambda df=df: kit(df), repeats)
        t_ref = best(lambda b=b, f=f: direct(b, f), repeats)
        print(f"n = {n:>9,}: evalkit {t_kit * 1e3:9.2f} ms | direct scipy/numpy "
              f"{t_ref * 1e3:9.2f} ms | ratio {t_kit / t_ref:5.2f}")


if __name__ == "__main__":
    main()
