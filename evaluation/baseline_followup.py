"""Baseline versus follow-up analyses for one group of pupils (and a two-group ANCOVA).

Sign convention used throughout
-------------------------------
* ``change = follow_up - baseline``. ``mean_change``, its CI, ``t``, ``d_z``, ``d_av``,
  ``d_rm`` and ``g_av`` (with its CI) are all signed this way, whatever the measure: a fall
  in SDQ difficulties gives negative values.
* "Improvement" is decided by ``direction`` ("higher_is_better" / "lower_is_better", the
  vocabulary of the parameters and theory of change; a measure's ``higher_is_better`` flag
  is converted by :func:`evaluation.results.direction_of`). ``eef_months`` is signed as
  improvement (positive = additional progress, negative = less progress), so it is
  computed from ``g_av`` multiplied by -1 when lower is better.
* ``headline()['verdict']`` is :func:`evaluation.results.verdict` of the CI against 0.
* Every result class here follows :class:`evaluation.results.AnalysisResult`.

Rows named in error messages are data-file line numbers (header = line 1) when the table
has its default 0..n-1 index, otherwise the table's own index labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.errors import DataError, describe_rows
from evaluation.measures import Measure
from evaluation.privacy import Disclosure
from evaluation.results import (
    Direction,
    OutcomeLike,
    Result,
    check_direction,
    direction_of,
    make_record,
    repr_html,
    verdict,
)

__all__ = [
    "eef_months",
    "paired_change",
    "PairedChange",
    "reliable_change",
    "ReliableChange",
    "paired_ordinal",
    "PairedOrdinal",
    "paired_binary",
    "PairedBinary",
    "ancova",
    "Ancova",
    "scores_to_wide",
]

# ---------------------------------------------------------------------------------------
# helpers


def _rows(index: pd.Index, mask: np.ndarray) -> str:
    """Describe the rows where ``mask`` is true, as file line numbers when we can."""
    pos = np.flatnonzero(mask)
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return describe_rows((pos + 2).tolist())
    return describe_rows(index[pos].tolist())


def _need(data: pd.DataFrame, *cols: str | None) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"Expected a table (pandas DataFrame), got {type(data).__name__}.")
    for c in cols:
        if c is not None and c not in data.columns:
            raise DataError(
                f"Column '{c}' is not in the table (columns: {', '.join(map(str, data.columns))})."
                " Check the column name or the project's column mapping."
            )


def _numeric(data: pd.DataFrame, col: str, measure: Measure | None = None) -> np.ndarray:
    """Column as float64; non-numeric entries and out-of-range scores raise DataError."""
    s = data[col]
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        conv = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
        bad = (s.notna() & conv.isna()).to_numpy()
        if pd.api.types.is_bool_dtype(s):
            bad = s.notna().to_numpy()
        if bad.any():
            raise DataError(
                f"Column '{col}' should hold numeric scores but has text or other values at "
                f"{_rows(data.index, bad)}. Correct them or leave them blank (missing)."
            )
        x = conv.to_numpy(dtype=float, na_value=np.nan)
    else:
        x = s.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(x)
    if inf.any():
        raise DataError(f"Column '{col}' has infinite values at {_rows(data.index, inf)}.")
    if measure is not None:
        out = ~np.isnan(x) & ((x < measure.min) | (x > measure.max))
        if out.any():
            raise DataError(
                f"Column '{col}' has scores outside the range of {measure.name} "
                f"({measure.min:g} to {measure.max:g}) at {_rows(data.index, out)}. "
                "Check these scores (or the measure chosen)."
            )
    return x


@dataclass
class _Paired:
    b: np.ndarray          # baseline, one entry per pupil (NaN if missing)
    f: np.ndarray          # follow-up
    frame: pd.DataFrame    # one row per pupil: [id], [by], baseline, follow_up
    by_col: str | None


def _collect(data: pd.DataFrame, baseline: str, follow_up: str, id: str | None,
             by: str | None, measure: Measure | None) -> _Paired:
    """One row per pupil with numeric baseline and follow-up (NaN where missing)."""
    _need(data, baseline, follow_up, id, by)
    if baseline == follow_up:
        raise DataError(f"Baseline and follow-up are the same column ('{baseline}').")
    b = _numeric(data, baseline, measure)
    f = _numeric(data, follow_up, measure)
    cols: dict[str, Any] = {}
    if id is not None:
        ids = data[id]
        miss = ids.isna().to_numpy()
        if miss.any():
            raise DataError(f"Column '{id}' (pupil id) is blank at {_rows(data.index, miss)}. "
                            "Every row needs a pupil id.")
        if not ids.is_unique:
            # A pupil may be split over rows (one per timepoint); two scores at the same
            # timepoint cannot be paired without guessing, so refuse.
            codes, uniq = pd.factorize(ids)
            for col, x in ((baseline, b), (follow_up, f)):
                have = ~np.isnan(x)
                counts = np.bincount(codes[have], minlength=len(uniq))
                dup = have & (counts[codes] > 1)
                if dup.any():
                    raise DataError(
                        f"Column '{col}': some pupils ('{id}') have more than one score at this "
                        f"timepoint, at {_rows(data.index, dup)}. Keep one score per pupil "
                        "per timepoint (e.g. the first or the latest) and run again."
                    )
            tmp = pd.DataFrame({"_b": b, "_f": f, "_code": codes})
            if by is not None:
                tmp["_by"] = data[by].to_numpy()
            g = tmp.groupby("_code", sort=True).first()  # first() skips missing values
            b = g["_b"].to_numpy(dtype=float)
            f = g["_f"].to_numpy(dtype=float)
            cols[id] = uniq.take(g.index.to_numpy())
            if by is not None:
                cols[by] = g["_by"].to_numpy()
        else:
            cols[id] = ids.to_numpy()
            if by is not None:
                cols[by] = data[by].to_numpy()
        index = pd.RangeIndex(len(b))
    else:
        if by is not None:
            cols[by] = data[by].to_numpy()
        index = data.index
    cols["baseline"] = b
    cols["follow_up"] = f
    return _Paired(b=b, f=f, frame=pd.DataFrame(cols, index=index, copy=False), by_col=by)


def _counts(b: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, int, int]:
    hb, hf = ~np.isnan(b), ~np.isnan(f)
    both = hb & hf
    return both, int((hb & ~hf).sum()), int((hf & ~hb).sum())


# ---------------------------------------------------------------------------------------
# EEF months' progress

_EEF_UPPER = (1, 9, 18, 26, 35, 44, 52, 61, 69, 78, 87, 95)  # hundredths, months 0..11


def _eef_label(months: int) -> str:
    m = abs(months)
    if m == 0:
        return "very low or no impact"
    if m <= 2:
        return "low"
    if m <= 5:
        return "moderate"
    if m <= 8:
        return "high"
    return "very high"


def eef_months(g: float) -> tuple[int, str]:
    """Convert an effect size to EEF months' additional progress and its impact label.

    The effect size is first rounded to two decimals (halves away from zero), then looked
    up in the EEF Teaching and Learning Toolkit conversion table: 0 months -0.01 to 0.01;
    1: 0.02-0.09; 2: 0.10-0.18; 3: 0.19-0.26; 4: 0.27-0.35; 5: 0.36-0.44; 6: 0.45-0.52;
    7: 0.53-0.61; 8: 0.62-0.69; 9: 0.70-0.78; 10: 0.79-0.87; 11: 0.88-0.95; 12: 0.96 and
    above. Negative effect sizes mirror this (e.g. -0.30 -> -4). Labels: very low or no
    impact (0), low (1-2), moderate (3-5), high (6-8), very high (9-12 months).
    """
    g = float(g)
    if not math.isfinite(g):
        raise ValueError(f"eef_months needs a finite effect size, got {g}")
    hundredths = math.floor(abs(g) * 100 + 0.5)
    months = next((m for m, up in enumerate(_EEF_UPPER) if hundredths <= up), 12)
    months = -months if g < 0 else months
    return months, _eef_label(months)


def _size_word(g: float) -> str:
    # Cohen (1988) conventional benchmarks for standardised mean differences
    a = abs(g)
    if a < 0.2:
        return "very small"
    if a < 0.5:
        return "small"
    if a < 0.8:
        return "moderate"
    return "large"


def _months_phrase(months: int, improved: bool) -> str:
    m = abs(months)
    kind = "additional" if improved else "less"
    if m == 0:
        return f"equivalent to less than one month's {kind} progress on the EEF scale"
    unit = "month's" if m == 1 else "months'"
    return f"equivalent to about {m} {unit} {kind} progress on the EEF scale"


# ---------------------------------------------------------------------------------------
# paired change (continuous scores)

_STAT_COLS = [
    "baseline_mean", "baseline_sd", "follow_up_mean", "follow_up_sd", "mean_change",
    "mean_change_ci_low", "mean_change_ci_high", "t", "df", "p", "wilcoxon_W", "wilcoxon_p",
    "r", "d_z", "d_av", "d_rm", "g_av", "g_av_ci_low", "g_av_ci_high", "cles", "eef_months",
    "eef_label",
]


def _paired_stats(b: np.ndarray, f: np.ndarray, confidence: float,
                  direction: Direction) -> tuple[dict[str, Any], str]:
    """All paired statistics for complete pairs ``b``, ``f``; returns (stats, note)."""
    n = b.size
    out: dict[str, Any] = dict.fromkeys(_STAT_COLS, np.nan)
    out["eef_label"] = ""
    if n < 2:
        return out, "fewer than two pupils with both scores"
    d = f - b
    mb, mf = b.mean(), f.mean()
    sb, sf = b.std(ddof=1), f.std(ddof=1)
    md = mf - mb
    sd_d = d.std(ddof=1)
    out.update(baseline_mean=mb, baseline_sd=sb, follow_up_mean=mf, follow_up_sd=sf,
               mean_change=md, df=float(n - 1))
    if not sd_d > 0:
        return out, "every pupil changed by the same amount, so the change has no spread"
    alpha = 1 - confidence
    se = sd_d / math.sqrt(n)
    tcrit = stats.t.ppf(1 - alpha / 2, n - 1)
    t = md / se
    out.update(mean_change_ci_low=md - tcrit * se, mean_change_ci_high=md + tcrit * se, t=t,
               p=float(2 * stats.t.sf(abs(t), n - 1)))
    if sb > 0 and sf > 0:
        # Pearson r from the same moments (cheaper than a second pass through pearsonr)
        cov = ((b - mb) * (f - mf)).sum() / (n - 1)
        r = float(np.clip(cov / (sb * sf), -1.0, 1.0))
    else:
        r = np.nan
    d_z = md / sd_d
    d_av = md / ((sb + sf) / 2) if (sb + sf) > 0 else np.nan
    j = 1 - 3 / (4 * (n - 1) - 1)
    g_av = d_av * j
    # SE of a paired standardised difference (Borenstein et al. 2009, eq. 4.28),
    # with r = 0 when undefined (a constant score at one timepoint)
    r_use = 0.0 if np.isnan(r) else r
    var_d = (1 / n + d_av**2 / (2 * n)) * 2 * (1 - r_use)
    z = stats.norm.ppf(1 - alpha / 2)
    half = z * j * math.sqrt(var_d) if np.isfinite(var_d) else np.nan
    nz = d[d != 0]
    if nz.size:
        w = stats.wilcoxon(d, zero_method="wilcox")
        out.update(wilcoxon_W=float(w.statistic), wilcoxon_p=float(w.pvalue))
    out.update(r=r, d_z=d_z, d_av=d_av, d_rm=d_z * math.sqrt(2 * (1 - r)) if r == r else np.nan,
               g_av=g_av, g_av_ci_low=g_av - half, g_av_ci_high=g_av + half,
               cles=float(stats.norm.cdf(d_z)))
    if np.isfinite(g_av):
        months, label = eef_months(g_av if direction == "higher_is_better" else -g_av)
        out.update(eef_months=months, eef_label=label)
    return out, ""


def _direction(direction: Direction | None, measure: Measure | None,
               default: Direction | None = "higher_is_better") -> Direction | None:
    """``direction`` as given, else the measure's (converted from its registry flag)."""
    if direction is not None:
        return check_direction(direction)
    return direction_of(measure.higher_is_better) if measure is not None else default


def _change_plot(frame: pd.DataFrame, est: str, lo: str, hi: str, label: str, xlabel: str,
                 ax: Any = None) -> Any:
    """Estimates with their intervals, one row per group, and a line at no change."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.4 * len(frame) + 1)))
    else:
        fig = ax.figure
    y = np.arange(len(frame))[::-1]
    ax.errorbar(frame[est], y, xerr=[frame[est] - frame[lo], frame[hi] - frame[est]],
                fmt="o", color="C0")
    ax.axvline(0, color="0.5", ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels([str(v) for v in frame[label]])
    ax.set_xlabel(xlabel)
    return fig


#: Counts of a paired-change summary, and what is worked out from the pairs of a group.
_COUNT_COLS = ["n_pairs", "n_baseline_only", "n_follow_up_only"]
_DERIVED_COLS = _STAT_COLS + ["note"]


@dataclass
class PairedChange:
    """Result of :func:`paired_change`.

    Follows :class:`evaluation.results.AnalysisResult`. ``summary``: one row per subgroup
    plus an "All" row, with statistics for any group of two or more pairs;
    ``pairs``: one row per pupil with baseline, follow_up, change and
    status (paired / baseline only / follow-up only / neither); ``sentence``: the
    plain-English result for the "All" row, its counts written through ``disclosure``.
    What a reader sees of ``summary`` is :meth:`board_table`.
    """

    summary: pd.DataFrame
    pairs: pd.DataFrame
    sentence: str
    label: str
    direction: Direction
    confidence: float
    disclosure: Disclosure = field(default_factory=Disclosure)
    unit: str = "points"

    def headline(self) -> dict[str, Any]:
        """Estimate (mean change), CI, unit, n and verdict for the "All" row."""
        row = self.summary.loc[self.summary["group"] == "All"].iloc[0]
        lo, hi = float(row["mean_change_ci_low"]), float(row["mean_change_ci_high"])
        return {
            "estimate": float(row["mean_change"]), "ci_low": lo, "ci_high": hi,
            "unit": f"{self.unit} (mean change)", "null": 0.0, "n": int(row["n_pairs"]),
            "verdict": verdict(lo, hi, null=0.0, direction=self.direction),
        }

    def plot(self, ax: Any = None) -> Any:
        """Mean change with its CI for each group and for all pupils."""
        rows = self.summary.dropna(subset=["mean_change_ci_low"])
        return _change_plot(rows, "mean_change", "mean_change_ci_low", "mean_change_ci_high",
                            "group", f"Mean change in {self.label} ({self.unit})", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the mean change of all pupils."""
        h = self.headline()
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=_headline_text(self.label, h["estimate"], h["ci_low"],
                                                   h["ci_high"]),
                           period=period, n=n, notebook=notebook)

    def board_table(self, disclosure: Disclosure | None = None) -> pd.DataFrame:
        """``summary`` through the project's disclosure step (``disclosure``, or the one the
        result was made with).

        Counts below the threshold are withheld (:data:`evaluation.privacy.WITHHELD`); a
        group whose pairs are withheld shows none of its statistics. The groups add up to
        the "All" row (``sums_down``), and the pupils with only a baseline and only a
        follow-up add up to the unpaired pupils the sentence names (``sums_across``), so
        the next-smallest cell is withheld wherever one could be recovered by subtraction.
        """
        shown = self.disclosure if disclosure is None else disclosure
        return shown.table(self.summary, _COUNT_COLS, derived={"n_pairs": _DERIVED_COLS},
                           sums_down=True,
                           sums_across=[["n_baseline_only", "n_follow_up_only"]])


def _headline_text(label: str, estimate: float, lo: float, hi: float) -> str:
    """E.g. 'Attendance +2.4 points (+1.3 to +3.5)': the headline line of every page."""
    return f"{label[:1].upper() + label[1:]} {estimate:+.1f} points ({lo:+.1f} to {hi:+.1f})"


def _sentence(row: pd.Series, label: str, direction: Direction, confidence: float,
              disclosure: Disclosure) -> str:
    n = int(row["n_pairs"])
    unpaired = int(row["n_baseline_only"] + row["n_follow_up_only"])
    tail = ""
    if unpaired:
        tail = (f" In addition, {disclosure.pupils(unpaired)} with only one score could not "
                "be compared.")
    if disclosure.is_small(n):
        return (f"Fewer than {disclosure.threshold} pupils had both scores for {label}, too "
                f"few to report their change without risk of identifying them.{tail}")
    if n < 2 or not np.isfinite(row["mean_change_ci_low"]):
        return (f"There were not enough paired scores to estimate the change in pupils' "
                f"{label} (n = {disclosure.count(n)}; "
                f"{row['note'] or 'no spread in the change'}).{tail}")
    b, f = row["baseline_mean"], row["follow_up_mean"]
    moved = "rose" if f > b else "fell" if f < b else "stayed"
    said = verdict(row["mean_change_ci_low"], row["mean_change_ci_high"], null=0.0,
                   direction=direction)
    pct = f"{confidence * 100:g}%"
    g, lo, hi = row["g_av"], row["g_av_ci_low"], row["g_av_ci_high"]
    if said == "no clear change":
        return (f"Pupils' {label} went from {b:.1f} to {f:.1f} on average "
                f"(n = {disclosure.count(n)}); this is "
                f"not a clear change either way (mean change {row['mean_change']:+.1f}, {pct} "
                f"CI {row['mean_change_ci_low']:.1f} to {row['mean_change_ci_high']:.1f}; "
                f"Hedges' g = {g:.2f}).{tail}")
    improved = said == "improved"
    # report g in the direction of the word used ("improvement"/"deterioration")
    sign = 1.0 if (improved == (direction == "higher_is_better")) else -1.0
    g_s = sign * g
    lo_s, hi_s = sorted((sign * lo, sign * hi))
    word = "improvement" if improved else "deterioration"
    months = int(row["eef_months"]) if np.isfinite(row["eef_months"]) else 0
    return (f"Pupils' {label} {moved} from {b:.1f} to {f:.1f} on average "
            f"(n = {disclosure.count(n)}), a "
            f"{_size_word(g)} {word} (Hedges' g = {g_s:.2f}, {pct} CI {lo_s:.2f} to "
            f"{hi_s:.2f}), {_months_phrase(months, improved)}.{tail}")


def paired_change(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    id: str | None = None,
    direction: Direction | None = None,
    confidence: float = 0.95,
    label: str | None = None,
    by: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
) -> PairedChange:
    """Compare each pupil's follow-up score with their baseline score.

    ``data`` has one row per pupil with a ``baseline`` and a ``follow_up`` column; with
    ``id`` given, a pupil may be spread over several rows (e.g. one per timepoint) but may
    have only one score per timepoint. Pupils with only one score are counted
    (``n_baseline_only``, ``n_follow_up_only``) and left out of the statistics.

    Formulas (n pairs, change d = follow-up - baseline; Lakens 2013, Front Psychol 4:863):

    * paired t = mean(d) / (sd(d)/sqrt(n)), df = n - 1; CI mean(d) +/- t_crit * sd(d)/sqrt(n)
    * Wilcoxon signed-rank: ``scipy.stats.wilcoxon(d, zero_method="wilcox")`` (zero changes
      dropped); NaN when every change is zero
    * r = Pearson correlation of baseline and follow-up
    * d_z = mean(d)/sd(d); d_av = mean(d)/((sd1 + sd2)/2); d_rm = d_z * sqrt(2(1 - r))
    * g_av = d_av * J, J = 1 - 3/(4(n - 1) - 1) (Hedges' correction as Lakens uses it)
    * CI for g_av: normal approximation g_av +/- z * J * SE(d), with
      SE(d)^2 = (1/n + d_av^2/(2n)) * 2(1 - r) (Borenstein, Hedges, Higgins & Rothstein 2009,
      Introduction to Meta-Analysis, eq. 4.28; exact for d_rm, approximate for d_av when the
      two SDs differ)
    * CLES = Phi(d_z), the probability that a random pupil's change is positive (McGraw &
      Wong 1992, as given by Lakens 2013)
    * eef_months from g_av signed as improvement (see module docstring and ``eef_months``)

    All effect sizes are signed as change (follow-up - baseline); see module docstring.
    The sentence's size word uses Cohen's (1988) benchmarks (0.2 small, 0.5 moderate,
    0.8 large) and its g is signed in the direction of the word ("improvement" /
    "deterioration"). ``measure`` (optional) checks that scores lie in the measure's range
    and supplies the label and, unless ``direction`` is given, the direction
    (default "higher_is_better" without a measure).

    ``disclosure`` (the project's :class:`~evaluation.privacy.Disclosure`) writes the
    sentence's counts and is what :meth:`PairedChange.board_table` applies; without it the
    default board threshold (5) applies, so nothing written for a reader escapes the rule.
    The statistics are computed for any n.
    """
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}.")
    # the measure knows its direction; plain scores: higher is better
    direction = _direction(direction, measure)
    p = _collect(data, baseline, follow_up, id, by, measure)
    both, n_b_only, n_f_only = _counts(p.b, p.f)
    n_all = int(both.sum())
    if n_all < 2:
        raise DataError(
            f"Columns '{baseline}' and '{follow_up}': only {n_all} pupil(s) have both a "
            "baseline and a follow-up score; at least two pairs are needed. Check that the "
            "follow-up scores have been entered against the right pupils."
        )
    change = p.f - p.b
    if np.ptp(change[both]) == 0:
        raise DataError(
            f"Columns '{baseline}' and '{follow_up}': every one of the {n_all} pupils changed "
            f"by exactly {change[both][0]:g}, so the change has no spread and no test or "
            "effect size can be computed. Check that the follow-up column is not a copy of "
            "the baseline (or a constant)."
        )
    if label is None:
        label = measure.label if measure is not None else f"{baseline} score"
    rows = []
    groups: list[tuple[Any, np.ndarray]] = []
    if by is not None:
        codes, uniq = pd.factorize(p.frame[by], sort=True)
        for k, name in enumerate(uniq):
            groups.append((name, codes == k))
        if (codes < 0).any():
            groups.append(("Missing", codes < 0))
    groups.append(("All", np.ones(p.b.size, dtype=bool)))
    for name, mask in groups:
        sel = both & mask
        st, note = _paired_stats(p.b[sel], p.f[sel], confidence, direction)
        rows.append({"group": name, "n_pairs": int(sel.sum()),
                     "n_baseline_only": int((mask & ~np.isnan(p.b) & np.isnan(p.f)).sum()),
                     "n_follow_up_only": int((mask & np.isnan(p.b) & ~np.isnan(p.f)).sum()),
                     **st, "note": note})
    summary = pd.DataFrame(rows)
    status = np.where(both, 0, np.where(~np.isnan(p.b), 1, np.where(~np.isnan(p.f), 2, 3)))
    pairs = p.frame
    pairs["change"] = change
    pairs["status"] = pd.Categorical.from_codes(
        status, categories=["paired", "baseline only", "follow-up only", "neither"])
    unit = "percentage points" if measure is not None and measure.name.endswith("_pct") \
        else "points"
    all_row = summary.iloc[-1]
    shown = disclosure if disclosure is not None else Disclosure()
    return PairedChange(
        summary=summary, pairs=pairs,
        sentence=_sentence(all_row, label, direction, confidence, shown), label=label,
        direction=direction, confidence=confidence, disclosure=shown,
        unit=unit,
    )


# ---------------------------------------------------------------------------------------
# reliable and clinically significant change

RC_CATEGORIES = ["reliably improved", "no reliable change", "reliably deteriorated"]
CS_CATEGORIES = ["recovered", "improved", "unchanged", "deteriorated"]


@dataclass
class ReliableChange:
    """Result of :func:`reliable_change`: per-pupil table, summary counts and the inputs.

    Follows :class:`evaluation.results.AnalysisResult`. Its headline is the share of pupils
    who reliably improved, with a Wilson interval, against the share that measurement
    noise alone would put past the threshold (one tail of the normal beyond ``z``): more
    than that is "improved", fewer "worsened".
    """

    pupils: pd.DataFrame
    summary: pd.DataFrame
    se_measurement: float
    s_diff: float
    points_needed: float
    cutoff: float | None
    criterion: str | None
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    notes: list[str] = field(default_factory=list)
    direction: Direction = "higher_is_better"
    z: float = 1.96
    label: str = "score"
    disclosure: Disclosure = field(default_factory=Disclosure)

    @property
    def confidence(self) -> float:
        """The two-sided confidence that matches the threshold ``z``."""
        return float(1 - 2 * stats.norm.sf(self.z))

    def headline(self) -> dict[str, Any]:
        """Share reliably improved (Wilson CI) against the share noise alone would give."""
        from statsmodels.stats.proportion import proportion_confint

        k = int(self.summary.loc[self.summary["category"] == "reliably improved", "n"].iloc[0])
        lo, hi = proportion_confint(k, self.n_pairs, alpha=1 - self.confidence, method="wilson")
        null = float(stats.norm.sf(self.z))
        return {"estimate": k / self.n_pairs, "ci_low": float(lo), "ci_high": float(hi),
                "unit": "share of pupils reliably improved", "null": null, "n": self.n_pairs,
                "verdict": verdict(float(lo), float(hi), null=null,
                                   direction="higher_is_better")}

    @property
    def sentence(self) -> str:
        h = self.headline()
        k = int(round(h["estimate"] * self.n_pairs))
        shown = self.disclosure
        if shown.is_small(k) or shown.is_small(self.n_pairs - k):
            return (f"Of {shown.pupils(self.n_pairs)} with both scores, the number whose "
                    f"{self.label} reliably improved is withheld to protect pupils' privacy.")
        return (f"{k} of {shown.pupils(self.n_pairs)} ({h['estimate']:.0%}, "
                f"{self.confidence:.0%} CI {h['ci_low']:.0%} to {h['ci_high']:.0%}) improved "
                f"their {self.label} by more than measurement noise; noise alone would give "
                f"about {h['null']:.1%}.")

    def plot(self, ax: Any = None) -> Any:
        """Pupils in each reliable-change category."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 2.5))
        else:
            fig = ax.figure
        part = self.summary[self.summary["classification"] == "reliable change"]
        ax.barh(part["category"][::-1], part["n"][::-1], color="C0")
        ax.set_xlabel("Pupils")
        return fig

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the share of pupils reliably improved."""
        h = self.headline()
        label = self.label[:1].upper() + self.label[1:]
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=(f"{label}: {h['estimate']:.0%} reliably improved "
                                     f"({h['ci_low']:.0%} to {h['ci_high']:.0%})"),
                           period=period, n=n, notebook=notebook)


def _jt_cutoff(criterion: str, direction: Direction, functional: tuple | None,
               dysfunctional: tuple | None) -> float:
    # the side of the functional population
    toward = 1.0 if direction == "higher_is_better" else -1.0
    if criterion == "a":
        if dysfunctional is None:
            raise DataError("Cut-off criterion 'a' needs dysfunctional=(mean, sd).")
        return dysfunctional[0] + toward * 2 * dysfunctional[1]
    if criterion == "b":
        if functional is None:
            raise DataError("Cut-off criterion 'b' needs functional=(mean, sd).")
        return functional[0] - toward * 2 * functional[1]
    if criterion == "c":
        if functional is None or dysfunctional is None:
            raise DataError("Cut-off criterion 'c' needs both functional=(mean, sd) and "
                            "dysfunctional=(mean, sd).")
        (m0, s0), (m1, s1) = functional, dysfunctional
        return (s0 * m1 + s1 * m0) / (s0 + s1)
    raise DataError(f"criterion must be 'a', 'b' or 'c', got {criterion!r}.")


def _norm_pair(name: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        m, s = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a (mean, sd) pair, got {value!r}.") from None
    if not (math.isfinite(m) and math.isfinite(s) and s > 0):
        raise DataError(f"{name} must be a (mean, sd) pair with a positive SD, got {value!r}.")
    return (m, s)


def reliable_change(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    reliability: float | None = None,
    sd: float | None = None,
    direction: Direction | None = None,
    cutoff: float | None = None,
    functional: tuple[float, float] | None = None,
    dysfunctional: tuple[float, float] | None = None,
    criterion: str | None = None,
    id: str | None = None,
    measure: Measure | None = None,
    z: float = 1.96,
    label: str | None = None,
    disclosure: Disclosure | None = None,
) -> ReliableChange:
    """Reliable and clinically significant change per pupil (Jacobson & Truax 1991).

    SE = sd * sqrt(1 - reliability); S_diff = sqrt(2) * SE; RCI = (follow-up - baseline) /
    S_diff. A pupil has reliably improved when |RCI| > z (1.96, p < .05) in the better
    direction (``direction``), reliably deteriorated when in the worse direction.

    Clinical significance needs a cut-off: ``cutoff`` as given, else computed from norms
    ((mean, sd) tuples; 0 = functional, 1 = dysfunctional population):
    a = M1 +/- 2 SD1 (2 SD beyond the dysfunctional mean, toward functional);
    b = M0 -/+ 2 SD0 (2 SD from the functional mean, toward dysfunctional);
    c = (SD0 * M1 + SD1 * M0) / (SD0 + SD1).
    ``criterion`` defaults to "c" with both norms, "b" with functional only, "a" with
    dysfunctional only. Categories: recovered (reliably improved and follow-up on the
    functional side of the cut-off), improved (reliably improved, not past the cut-off),
    unchanged (no reliable change), deteriorated (reliably deteriorated).

    ``measure`` supplies reliability, sd, direction, cut-off and norms not given explicitly;
    a measure without a reliability (e.g. attendance_pct) raises DataError.
    """
    if measure is not None:
        if reliability is None and measure.reliability is None:
            raise DataError(
                f"Measure '{measure.name}' has no reliability in the registry, so a reliable "
                f"change index is not applicable "
                f"({measure.source.get('reliability', 'no published reliability')}). Pass "
                "reliability= only if you have a published value for this measure."
            )
        reliability = measure.reliability if reliability is None else reliability
        sd = measure.sd if sd is None else sd
        direction = _direction(direction, measure)
        cutoff = measure.cutoff if cutoff is None else cutoff
        functional = measure.functional if functional is None else functional
        dysfunctional = measure.dysfunctional if dysfunctional is None else dysfunctional
    if reliability is None or isinstance(reliability, bool) or not (
            isinstance(reliability, int | float) and 0 < reliability < 1):
        raise DataError(f"reliability must be a number between 0 and 1 (exclusive), got "
                        f"{reliability!r}. Use the measure's published reliability (e.g. "
                        "Cronbach's alpha or test-retest).")
    if sd is None or not (isinstance(sd, int | float) and sd > 0 and math.isfinite(sd)):
        raise DataError(f"sd must be a positive number (the SD of a normal population or of "
                        f"the baseline scores), got {sd!r}.")
    if direction is None:
        raise DataError("direction must be given ('higher_is_better' or 'lower_is_better') "
                        "for reliable change.")
    check_direction(direction)
    higher_is_better = direction == "higher_is_better"
    functional = _norm_pair("functional", functional)
    dysfunctional = _norm_pair("dysfunctional", dysfunctional)
    p = _collect(data, baseline, follow_up, id, None, measure)
    both, n_b_only, n_f_only = _counts(p.b, p.f)
    n = int(both.sum())
    if n < 1:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': no pupil has both scores.")
    se = sd * math.sqrt(1 - reliability)
    s_diff = math.sqrt(2) * se
    change = p.f - p.b
    rci = change / s_diff
    better = rci if higher_is_better else -rci
    rc_code = np.where(better > z, 0, np.where(better < -z, 2, 1))
    rc_code = np.where(both, rc_code, -1)
    pupils = p.frame
    pupils["change"] = change
    pupils["rci"] = rci
    pupils["reliable_change"] = pd.Categorical.from_codes(rc_code, categories=RC_CATEGORIES)
    rc_counts = np.bincount(rc_code[both], minlength=3)
    parts = [pd.DataFrame({"classification": "reliable change", "category": RC_CATEGORIES,
                           "n": rc_counts, "pct": 100 * rc_counts / n})]
    if cutoff is None and criterion is None and (functional or dysfunctional):
        criterion = "c" if functional and dysfunctional else "b" if functional else "a"
    if cutoff is None and criterion is not None:
        cutoff = _jt_cutoff(criterion, direction, functional, dysfunctional)
    elif cutoff is not None:
        criterion = "given"
    if cutoff is not None:
        side = (p.f > cutoff) if higher_is_better else (p.f < cutoff)
        cs = np.where(rc_code == 0, np.where(side, 0, 1), np.where(rc_code == 2, 3, 2))
        cs = np.where(both, cs, -1)
        pupils["follow_up_functional"] = np.where(np.isnan(p.f), np.nan, side.astype(float))
        pupils["clinical_change"] = pd.Categorical.from_codes(cs, categories=CS_CATEGORIES)
        cs_counts = np.bincount(cs[both], minlength=4)
        parts.append(pd.DataFrame({"classification": "clinical significance",
                                   "category": CS_CATEGORIES, "n": cs_counts,
                                   "pct": 100 * cs_counts / n}))
    summary = pd.concat(parts, ignore_index=True)
    return ReliableChange(
        pupils=pupils, summary=summary, se_measurement=se, s_diff=s_diff,
        points_needed=z * s_diff, cutoff=cutoff, criterion=criterion, n_pairs=n,
        n_baseline_only=n_b_only, n_follow_up_only=n_f_only, direction=direction, z=z,
        label=label or (measure.label if measure is not None else f"{baseline} score"),
        disclosure=disclosure if disclosure is not None else Disclosure(),
    )


# ---------------------------------------------------------------------------------------
# ordinal and yes/no items

_YES = {"yes", "y", "true", "t", "1", "1.0"}
_NO = {"no", "n", "false", "f", "0", "0.0"}


def _pair_rows(data: pd.DataFrame, baseline: str, follow_up: str,
               id: str | None) -> tuple[pd.Series, pd.Series]:
    """Baseline and follow-up columns, one entry per pupil (collapsing by id if given)."""
    _need(data, baseline, follow_up, id)
    if id is None:
        return data[baseline], data[follow_up]
    miss = data[id].isna().to_numpy()
    if miss.any():
        raise DataError(f"Column '{id}' (pupil id) is blank at {_rows(data.index, miss)}.")
    for col in (baseline, follow_up):
        have = data[col].notna()
        dup = (have & data[id].where(have).duplicated(keep=False) & have).to_numpy()
        if dup.any():
            raise DataError(
                f"Column '{col}': some pupils ('{id}') have more than one answer at this "
                f"timepoint, at {_rows(data.index, dup)}. Keep one per pupil per timepoint."
            )
    g = data.groupby(id, sort=True)[[baseline, follow_up]].first()
    return g[baseline], g[follow_up]


def _levels_codes(s: pd.Series, col: str, levels: list[str], index: pd.Index) -> np.ndarray:
    key = {str(v).strip().lower(): i for i, v in enumerate(levels)}
    txt = s.astype("string").str.strip().str.lower()
    codes = txt.map(key)
    bad = (s.notna() & codes.isna()).to_numpy()
    if bad.any():
        raise DataError(
            f"Column '{col}' has answers that are not one of the levels "
            f"{', '.join(map(str, levels))} at {_rows(index, bad)}. Correct the spelling or "
            "add the level."
        )
    return codes.to_numpy(dtype=float, na_value=np.nan)


@dataclass
class PairedOrdinal:
    """Result of :func:`paired_ordinal`."""

    table: pd.DataFrame  # rows baseline level, columns follow-up level
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    n_up: int
    n_same: int
    n_down: int
    sign_test_p: float
    wilcoxon_W: float
    wilcoxon_p: float
    sentence: str


def paired_ordinal(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    levels: list[str],
    *,
    id: str | None = None,
    label: str | None = None,
) -> PairedOrdinal:
    """Movement between ordered levels (e.g. Not evident < Developing < Secure).

    ``levels`` are given lowest first; answers match them ignoring case and spaces. Counts
    pupils moving up, down or staying; the sign test is the exact two-sided binomial test
    of n_up out of n_up + n_down against 1/2 (``scipy.stats.binomtest``); the Wilcoxon
    signed-rank test is on the differences of level codes (0, 1, 2, ...), zero differences
    dropped (``zero_method="wilcox"``). Both are NaN when no pupil moved.
    """
    if not isinstance(levels, list | tuple) or len(levels) < 2:
        raise DataError("levels must list at least two ordered levels, lowest first.")
    sb, sf = _pair_rows(data, baseline, follow_up, id)
    idx = data.index if id is None else sb.index
    cb = _levels_codes(sb, baseline, list(levels), idx)
    cf = _levels_codes(sf, follow_up, list(levels), idx)
    both, nb, nf = _counts(cb, cf)
    n = int(both.sum())
    if n < 2:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': only {n} pupil(s) have both "
                        "answers; at least two pairs are needed.")
    xb, xf = cb[both].astype(int), cf[both].astype(int)
    k = len(levels)
    tab = np.bincount(xb * k + xf, minlength=k * k).reshape(k, k)
    table = pd.DataFrame(tab, index=pd.Index(list(levels), name=f"{baseline} (baseline)"),
                         columns=pd.Index(list(levels), name=f"{follow_up} (follow-up)"))
    d = xf - xb
    up, down = int((d > 0).sum()), int((d < 0).sum())
    same = n - up - down
    if up + down:
        sign_p = float(stats.binomtest(up, up + down, 0.5).pvalue)
        w = stats.wilcoxon(d, zero_method="wilcox")
        wW, wp = float(w.statistic), float(w.pvalue)
    else:
        sign_p = wW = wp = np.nan
    label = label or baseline
    sentence = (f"Of {n} pupils with both answers for {label}, {up} moved up at least one level, "
                f"{same} stayed at the same level and {down} moved down")
    sentence += (f" (sign test p = {sign_p:.3f})." if up + down else
                 "; no pupil changed level.")
    return PairedOrdinal(table, n, nb, nf, up, same, down, sign_p, wW, wp, sentence)


def _yes_no(s: pd.Series, col: str, index: pd.Index) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    txt = s.astype("string").str.strip().str.lower()
    out = np.where(txt.isin(_YES).fillna(False).to_numpy(bool), 1.0,
                   np.where(txt.isin(_NO).fillna(False).to_numpy(bool), 0.0, np.nan))
    bad = s.notna().to_numpy() & np.isnan(out)
    if bad.any():
        raise DataError(f"Column '{col}' should hold yes/no answers but has other values at "
                        f"{_rows(index, bad)}. Use yes/no (or y/n, true/false, 1/0).")
    return out


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def newcombe_paired_ci(a: int, b: int, c: int, d: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """CI for p2 - p1 from a paired 2x2 table, Newcombe (1998) method 10.

    Table: a = yes/yes, b = yes at baseline only, c = yes at follow-up only, d = no/no;
    p1 = (a + b)/n, p2 = (a + c)/n. Wilson score limits (l1, u1), (l2, u2) are combined with
    phi = C/sqrt((a+b)(c+d)(a+c)(b+d)) (0 if the denominator is 0), where C = ad - bc - n/2
    if ad - bc > n/2, C = ad - bc if ad - bc < 0, else 0 (Newcombe's correction, as in
    Altman et al. 2000, Statistics with Confidence, p. 52):
    lower = D - sqrt((p2-l2)^2 - 2 phi (p2-l2)(u1-p1) + (u1-p1)^2),
    upper = D + sqrt((u2-p2)^2 - 2 phi (u2-p2)(p1-l1) + (p1-l1)^2), D = p2 - p1.
    Newcombe RG (1998) Improved confidence intervals for the difference between binomial
    proportions based on paired data. Stat Med 17:2635-2650.
    """
    n = a + b + c + d
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's corrected phi: ad - bc is reduced by n/2 when above n/2, 0 when between
    num = a * d - b * c
    num = num - n / 2 if num > n / 2 else (num if num < 0 else 0.0)
    phi = num / math.sqrt(den) if den > 0 else 0.0
    diff = p2 - p1
    lo = diff - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
                              + (u1 - p1) ** 2))
    hi = diff + math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1)
                              + (p1 - l1) ** 2))
    return max(-1.0, lo), min(1.0, hi)


@dataclass
class PairedBinary:
    """Result of :func:`paired_binary` (percentages are 0-100)."""

    table: pd.DataFrame  # rows baseline yes/no, columns follow-up yes/no
    n_pairs: int
    n_baseline_only: int
    n_follow_up_only: int
    pct_yes_baseline: float
    pct_yes_follow_up: float
    change_pp: float
    change_ci_low_pp: float
    change_ci_high_pp: float
    mcnemar_statistic: float
    mcnemar_p: float
    mcnemar_exact: bool
    sentence: str


def paired_binary(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    *,
    id: str | None = None,
    confidence: float = 0.95,
    label: str | None = None,
) -> PairedBinary:
    """Yes/no item asked at baseline and follow-up (e.g. "ready to learn").

    McNemar's test via ``statsmodels.stats.contingency_tables.mcnemar``: exact binomial when
    the discordant pairs b + c < 25, else the chi-square with continuity correction. The
    change in % yes (follow-up - baseline, percentage points) has a Newcombe (1998) method 10
    CI (see ``newcombe_paired_ci``). Answers: yes/no, y/n, true/false, 1/0 or booleans.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    sb, sf = _pair_rows(data, baseline, follow_up, id)
    idx = data.index if id is None else sb.index
    xb, xf = _yes_no(sb, baseline, idx), _yes_no(sf, follow_up, idx)
    both, nb, nf = _counts(xb, xf)
    n = int(both.sum())
    if n < 2:
        raise DataError(f"Columns '{baseline}' and '{follow_up}': only {n} pupil(s) have both "
                        "answers; at least two pairs are needed.")
    ib, jf = xb[both].astype(int), xf[both].astype(int)
    a = int(((ib == 1) & (jf == 1)).sum())
    b = int(((ib == 1) & (jf == 0)).sum())
    c = int(((ib == 0) & (jf == 1)).sum())
    d = n - a - b - c
    table = pd.DataFrame([[a, b], [c, d]],
                         index=pd.Index(["yes", "no"], name=f"{baseline} (baseline)"),
                         columns=pd.Index(["yes", "no"], name=f"{follow_up} (follow-up)"))
    exact = (b + c) < 25
    res = mcnemar(np.array([[a, b], [c, d]]), exact=exact, correction=True)
    lo, hi = newcombe_paired_ci(a, b, c, d, confidence)
    p1, p2 = 100 * (a + b) / n, 100 * (a + c) / n
    label = label or follow_up
    sentence = (f"The share of pupils with '{label}' went from {p1:.0f}% to {p2:.0f}% (n = {n}), "
                f"a change of {p2 - p1:+.0f} percentage points ({confidence * 100:g}% CI "
                f"{100 * lo:+.0f} to {100 * hi:+.0f}; McNemar p = {float(res.pvalue):.3f}).")
    return PairedBinary(table, n, nb, nf, p1, p2, p2 - p1, 100 * lo, 100 * hi,
                        float(res.statistic), float(res.pvalue), exact, sentence)


# ---------------------------------------------------------------------------------------
# ANCOVA: programme versus comparison, adjusting for baseline


@dataclass
class Ancova:
    """Result of :func:`ancova`. ``model`` is the fitted statsmodels OLS results.

    Follows :class:`evaluation.results.AnalysisResult`; the headline is the adjusted
    difference."""

    adjusted_difference: float
    ci_low: float
    ci_high: float
    p: float
    g: float
    g_ci_low: float
    g_ci_high: float
    eef_months: int
    eef_label: str
    n_treatment: int
    n_control: int
    n_excluded: int
    treatment: str
    control: str
    sentence: str
    model: Any
    direction: Direction = "higher_is_better"
    label: str = "score"
    confidence: float = 0.95

    @property
    def summary(self) -> pd.DataFrame:
        """One row: the adjusted difference, its CI and p, Hedges' g and the group sizes."""
        return pd.DataFrame([{
            "treatment": self.treatment, "control": self.control,
            "adjusted_difference": self.adjusted_difference, "ci_low": self.ci_low,
            "ci_high": self.ci_high, "p": self.p, "g": self.g, "g_ci_low": self.g_ci_low,
            "g_ci_high": self.g_ci_high, "eef_months": self.eef_months,
            "eef_label": self.eef_label, "n_treatment": self.n_treatment,
            "n_control": self.n_control, "n_excluded": self.n_excluded}])

    def headline(self) -> dict[str, Any]:
        """The adjusted difference, its CI, both groups' pupils and the verdict against 0."""
        return {"estimate": self.adjusted_difference, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "unit": "points (adjusted difference)", "null": 0.0,
                "n": self.n_treatment + self.n_control,
                "verdict": verdict(self.ci_low, self.ci_high, null=0.0,
                                   direction=self.direction)}

    def plot(self, ax: Any = None) -> Any:
        """The adjusted difference with its confidence interval."""
        frame = pd.DataFrame([{"group": f"{self.treatment} - {self.control}",
                               "d": self.adjusted_difference, "lo": self.ci_low,
                               "hi": self.ci_high}])
        return _change_plot(frame, "d", "lo", "hi", "group",
                            f"Adjusted difference in {self.label} (points)", ax)

    def _repr_html_(self) -> str:
        return repr_html(self)

    def record(self, outcome: OutcomeLike, *, period: str | None = None,
               n: int | None = None, notebook: str = "") -> Result:
        """The results.json record: the adjusted difference."""
        return make_record(self, outcome, analysis="baseline_followup",
                           headline=_headline_text(self.label, self.adjusted_difference,
                                                   self.ci_low, self.ci_high),
                           period=period, n=n, notebook=notebook)


def ancova(
    data: pd.DataFrame,
    baseline: str,
    follow_up: str,
    group: str,
    *,
    treatment: str | None = None,
    confidence: float = 0.95,
    direction: Direction | None = None,
    label: str | None = None,
    measure: Measure | None = None,
    disclosure: Disclosure | None = None,
) -> Ancova:
    """OLS ``follow_up ~ baseline + treated`` comparing two groups, adjusting for baseline.

    The adjusted difference is the coefficient of the treatment indicator, with its t-based
    CI and p. Hedges' g = adjusted difference / pooled SD of the follow-up outcome, where
    pooled SD = sqrt(((n1-1)s1^2 + (n0-1)s0^2)/(n1+n0-2)) (unconditional, as EEF guidance
    for evaluators uses), times J = 1 - 3/(4(n1+n0) - 9) (Hedges 1981); its CI is the CI of
    the adjusted difference scaled the same way. Months' progress uses g signed as
    improvement. ``treatment`` defaults to "programme" when that level exists. Pupils
    missing any of the three columns are excluded and counted (``n_excluded``). The
    sentence writes the two groups' sizes through ``disclosure`` (default: a board).
    """
    import statsmodels.api as sm

    _need(data, baseline, follow_up, group)
    direction = _direction(direction, measure)
    b = _numeric(data, baseline, measure)
    f = _numeric(data, follow_up, measure)
    gcol = data[group]
    keep = ~np.isnan(b) & ~np.isnan(f) & gcol.notna().to_numpy()
    levels = sorted(pd.unique(gcol[keep]).tolist(), key=str)
    if len(levels) != 2:
        raise DataError(f"Column '{group}' must have exactly two groups among complete rows; "
                        f"found {len(levels)}: {levels[:5]}.")
    if treatment is None:
        treatment = "programme" if "programme" in levels else None
        if treatment is None:
            raise DataError(f"Column '{group}': say which group is the treatment "
                            f"(treatment=...); groups are {levels}.")
    if treatment not in levels:
        raise DataError(f"treatment={treatment!r} is not a group in column '{group}' "
                        f"({levels}).")
    control = next(v for v in levels if v != treatment)
    treated = (gcol == treatment).to_numpy()
    n1, n0 = int((keep & treated).sum()), int((keep & ~treated).sum())
    if n1 < 2 or n0 < 2:
        raise DataError(f"Column '{group}': each group needs at least two pupils with both "
                        f"scores (got {treatment}: {n1}, {control}: {n0}).")
    y = f[keep]
    X = np.column_stack([np.ones(keep.sum()), b[keep], treated[keep].astype(float)])
    res = sm.OLS(y, X).fit()
    diff = float(res.params[2])
    lo, hi = (float(v) for v in res.conf_int(alpha=1 - confidence)[2])
    y1, y0 = y[treated[keep]], y[~treated[keep]]
    sd_pooled = math.sqrt(((n1 - 1) * y1.var(ddof=1) + (n0 - 1) * y0.var(ddof=1))
                          / (n1 + n0 - 2))
    if not sd_pooled > 0:
        raise DataError(f"Column '{follow_up}' has the same score for every pupil; no effect "
                        "size can be computed.")
    j = 1 - 3 / (4 * (n1 + n0) - 9)
    g, glo, ghi = diff / sd_pooled * j, lo / sd_pooled * j, hi / sd_pooled * j
    months, mlabel = eef_months(g if direction == "higher_is_better" else -g)
    label = label or (measure.label if measure is not None else f"{follow_up} score")
    said = verdict(lo, hi, null=0.0, direction=direction)
    pct = f"{confidence * 100:g}%"
    shown = disclosure if disclosure is not None else Disclosure()
    sizes = f"n = {shown.count(n1)} and {shown.count(n0)}"
    if said == "no clear change":
        sentence = (f"After allowing for baseline scores, {treatment} pupils' {label} was not "
                    f"clearly different from {control} pupils' (adjusted difference "
                    f"{diff:+.1f}, {pct} CI {lo:.1f} to {hi:.1f}; Hedges' g = {g:.2f}; "
                    f"{sizes}).")
    else:
        better = said == "improved"
        sentence = (f"After allowing for baseline scores, {treatment} pupils' {label} was "
                    f"{'better' if better else 'worse'} than {control} pupils' by "
                    f"{abs(diff):.1f} points (Hedges' g = {g:.2f}, {pct} CI {glo:.2f} to "
                    f"{ghi:.2f}; {sizes}), {_months_phrase(months, better)}.")
    return Ancova(diff, lo, hi, float(res.pvalues[2]), g, glo, ghi, months, mlabel, n1, n0,
                  int((~keep).sum()), str(treatment), str(control), sentence, res,
                  direction=direction, label=label, confidence=confidence)


# ---------------------------------------------------------------------------------------
# long scores table -> wide


def scores_to_wide(scores: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Turn the kit's ``scores`` table (pupil_id, measure, timepoint, score) into one row per
    pupil with ``baseline`` and ``follow_up`` columns for one measure.

    A pupil with two scores at one timepoint raises DataError naming the rows.
    """
    _need(scores, "pupil_id", "measure", "timepoint", "score")
    sel = scores[scores["measure"] == measure]
    if sel.empty:
        raise DataError(f"Column 'measure': no rows for measure '{measure}'.")
    tp = sel["timepoint"].astype("string").str.strip().str.lower()
    bad = ~tp.isin(["baseline", "follow_up"]).fillna(False).to_numpy(bool)
    if bad.any():
        raise DataError(f"Column 'timepoint' must be 'baseline' or 'follow_up'; see "
                        f"{_rows(scores.index, scores.index.isin(sel.index[bad]))}.")
    key = pd.DataFrame({"pupil_id": sel["pupil_id"].to_numpy(), "timepoint": tp.to_numpy()})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(
            f"Column 'pupil_id': some pupils have two '{measure}' scores at one timepoint, at "
            f"{_rows(scores.index, scores.index.isin(sel.index[dup]))}. Keep one per timepoint."
        )
    score = _numeric(sel, "score")
    wide = (pd.DataFrame({"pupil_id": key["pupil_id"], "timepoint": key["timepoint"],
                          "score": score})
            .pivot(index="pupil_id", columns="timepoint", values="score")
            .reindex(columns=["baseline", "follow_up"]).reset_index())
    wide.columns.name = None
    return wide
