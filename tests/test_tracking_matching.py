"""The id matching behind the tracking tables gives the same positions whatever the text
storage: Arrow (pyarrow), Python strings, or plain object columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import tracking as T

STORAGES = ["pyarrow", "python", "object"]


def as_storage(values: list, storage: str) -> pd.Series:
    if storage == "object":
        return pd.Series(values, dtype=object)
    return pd.Series(values, dtype=pd.StringDtype(storage, na_value=np.nan))


def first_positions(keys: list, values: list) -> np.ndarray:
    """Reference: a dictionary of first occurrences (missing never matches)."""
    first: dict = {}
    for i, k in enumerate(keys):
        if k is not None:
            first.setdefault(k, i)
    return np.array([first.get(v, -1) if v is not None else -1 for v in values])


@pytest.fixture(scope="module")
def ids():
    rng = np.random.default_rng(3)
    pool = [f"P{i:05d}" for i in range(300)]
    keys = [pool[i] for i in rng.integers(0, 200, 400)] + [None, None]  # repeats, missing
    values = [pool[i] for i in rng.integers(0, 300, 1000)] + [None]  # some unknown
    return keys, values


@pytest.mark.parametrize("storage", STORAGES)
def test_positions_and_first_positions_agree_with_a_dictionary(ids, storage):
    keys, values = ids
    k, v = as_storage(keys, storage), as_storage(values, storage)
    want = first_positions(keys, values)
    np.testing.assert_array_equal(T._positions(k, v), want)
    np.testing.assert_array_equal(T._positions(pd.Index(k), v, np.int32), want)
    got = T._first_positions(k, v, v.iloc[::-1].reset_index(drop=True))
    np.testing.assert_array_equal(got[0], first_positions(keys, keys))
    np.testing.assert_array_equal(got[1], want)
    np.testing.assert_array_equal(got[2], want[::-1])
    # keys from one storage, values from another: matched by value
    other = as_storage(values, "object" if storage != "object" else "python")
    np.testing.assert_array_equal(T._positions(k, other), want)


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("in_runs", [True, False])
def test_matching_long_columns_by_runs(storage, in_runs):
    """An attendance-sized column, sorted by pupil (runs) or shuffled, with missing ids and
    ids of pupils who are not among the keys."""
    rng = np.random.default_rng(5)
    pupils = np.array([f"P{i:05d}" for i in range(6000)], dtype=object)
    col = np.repeat(pupils, 40)
    col[rng.integers(0, len(col), 50)] = None
    if not in_runs:
        col = col[rng.permutation(len(col))]
    keys = as_storage(sorted(pupils[::2]), storage)  # half the pupils
    # in pieces, as a file read in row groups gives (Arrow: a chunk per piece)
    values = pd.concat([as_storage(list(part), storage) for part in np.array_split(col, 7)],
                       ignore_index=True)
    ids, lengths = T._id_runs(values)  # the first id of each run, or every id
    pos = T._positions(keys, ids, np.int32)
    got = pos if lengths is None else np.repeat(pos, lengths)
    assert (lengths is not None) == (in_runs and storage == "pyarrow")
    np.testing.assert_array_equal(got, first_positions(sorted(pupils[::2]), list(col)))
    assert got.dtype == np.int32 and (got >= 0).sum() > 100_000 and (got < 0).sum() > 100_000


@pytest.mark.parametrize("n", [50, 1_000_000])  # 7 names: a table below 5M cells, else .at
def test_joined_names_per_key_agree_with_python(n):
    rng = np.random.default_rng(8)
    names = ["play", "Art", "mentoring", "nurture", "b", "a b", "speech"]
    keys = rng.integers(0, min(n, 40), 300)
    codes = rng.integers(-1, len(names), 300)  # -1: no name
    want: dict[int, set] = {}
    for k, c in zip(keys.tolist(), codes.tolist(), strict=True):
        if c >= 0:
            want.setdefault(k, set()).add(names[c])
    got = T._joined_codes(keys, codes, names, n)
    assert len(got) == n and got.dtype == "str"
    expected = ["; ".join(sorted(want[k])) if k in want else None for k in range(40)]
    assert got.iloc[:40].tolist() == [np.nan if e is None else e for e in expected]
    assert got.iloc[40:].isna().all()
