"""The register links its tables by id whatever the text storage of each table (Arrow,
Python strings or plain objects, mixed between tables): the same register every time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import tracking as T

STORAGES = ["pyarrow", "python", "nullable", "object"]


def as_storage(values: pd.Series, storage: str) -> pd.Series:
    if storage == "object":
        return values.astype(object)
    if storage == "nullable":  # pandas' "string" (missing is pd.NA)
        return values.astype("string")
    return values.astype(pd.StringDtype(storage, na_value=np.nan))


def tables(seed: int = 3) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 300
    refs = pd.DataFrame({
        "referral_id": [f"R{i:04d}" for i in range(n)],
        "pupil_id": [f"P{i:03d}" for i in rng.integers(0, 200, n)],
        "referral_date": pd.Timestamp("2023-09-04")
        + pd.to_timedelta(rng.integers(0, 200, n), "D")})
    # some interventions and reviews name unknown referrals (R9xxx) or none
    ids = [f"R{i:04d}" for i in rng.integers(0, n, 600)] + ["R9001", None]
    ivs = pd.DataFrame({"intervention_id": [f"I{i}" for i in range(len(ids))],
                        "referral_id": ids,
                        "intervention": rng.choice(["nurture group", " Mentoring"], len(ids)),
                        "start_date": pd.Timestamp("2024-05-01")})
    rvs = pd.DataFrame({"review_id": ["V1", "V2", "V3"], "referral_id": ["R0001", "R9002", None],
                        "review_date": pd.Timestamp("2024-06-01")})
    pupils = pd.DataFrame({"pupil_id": [f"P{i:03d}" for i in range(0, 200, 2)],
                           "sex": "F"})
    return {"referrals": refs, "interventions": ivs, "reviews": rvs, "pupils": pupils}


def values(s: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in s.tolist()]


def build(t: dict[str, pd.DataFrame]) -> T.Register:
    return T.build_register(t["referrals"], t["interventions"], t["reviews"],
                            pupils=t["pupils"], today="2024-08-31")


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("mixed", [False, True])
def test_register_is_the_same_for_any_text_storage(storage, mixed):
    want = build(tables())
    t = tables()
    for name, frame in t.items():
        if mixed and name in ("interventions", "pupils"):
            continue  # these keep pandas' own strings: ids are matched across storages
        for col in frame.columns:
            if frame[col].dtype == "str":
                frame[col] = as_storage(frame[col], storage)
    got = build(t)
    for col in ("n_interventions", "n_reviews", "first_intervention_start", "sex",
                "interventions"):
        assert values(got.table[col]) == values(want.table[col]), col
    assert got.quality.equals(want.quality)
    assert list(got.interventions["intervention"].cat.categories) == [*T.MENU]
    q = got.quality.set_index("record_id")
    assert q.loc["I600", "problem"] == "unknown referral id R9001"
    assert q.loc["I601", "problem"] == "unknown referral id "
    assert q.loc["V2", "problem"] == "unknown referral id R9002"
    assert (got.table["sex"].notna() == got.table["pupil_id"].isin(t["pupils"]["pupil_id"])
            ).all()
