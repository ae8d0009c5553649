"""Keyed pseudonyms: stable within a project, useless to anyone without the key; and what
`evalkit validate` shows (where the key is, which columns were dropped), never the key."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import queue
import stat
import sys

import pandas as pd
import pytest

from evaluation import pseudonyms
from evaluation.cli import main
from evaluation.errors import EvalKitError
from evaluation.intake import ProjectData
from evaluation.params import load_params
from evaluation.project import Project
from evaluation.pseudonyms import (
    CONFIG_ENV,
    KEY_ENV,
    KeyFileWarning,
    forget_keys,
    key_file,
    key_fingerprint,
    key_location,
    pseudonymise,
)
from evaluation.toc import load_toc

ENV_KEY = "env-secret-0123456789abcdef-do-not-print"
POSIX = os.name != "nt"


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """Every test starts with no key in the environment and an empty config folder."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config"))
    forget_keys()
    yield tmp_path / "config"
    forget_keys()


def one(upn: str, project: str = "mini") -> str:
    return pseudonymise(pd.Series([upn]), project)[0]


def test_same_id_same_pseudonym_and_format():
    ids = pd.Series(["A123", " a123 ", None, "B456", 789], index=[10, 11, 12, 13, 14])
    out = pseudonymise(ids, "mini")
    assert out.dtype == "string" and list(out.index) == [10, 11, 12, 13, 14]
    assert out[10] == out[11]  # spaces and case do not make another pupil
    assert pd.isna(out[12])  # missing stays missing
    assert out[10] != out[13]
    assert out.dropna().str.fullmatch(r"P[0-9a-f]{16}").all()
    assert pseudonymise(pd.Series(["A123"]), "mini", prefix="R")[0] == "R" + out[10][1:]
    assert one("A123") == out[10]  # the same in every table and call of the project


def test_different_projects_and_keys_give_different_pseudonyms(monkeypatch):
    assert one("A123", "alpha") != one("A123", "beta")  # one key file each
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    # one secret for every project still gives each project its own pseudonyms
    assert one("A123", "alpha") != one("A123", "beta")
    first = one("A123", "alpha")
    monkeypatch.setenv(KEY_ENV, ENV_KEY + "-other")
    assert one("A123", "alpha") != first
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    assert one("A123", "alpha") == first


def _attacks(candidate: str, guess: str, project: str) -> list[str]:
    """What someone who knows the kit's code, but not the key, would try."""
    c = candidate.strip().upper().encode()
    g = guess.encode()
    derived = hmac.new(g, pseudonyms._DERIVE_LABEL + project.encode(), hashlib.sha256).digest()
    return [
        hashlib.sha256(c).hexdigest(),
        hashlib.sha256(g + c).hexdigest(),
        hashlib.sha256(f"{guess}\x1f{candidate}".encode()).hexdigest(),  # the old scheme
        hmac.new(g, c, hashlib.sha256).hexdigest(),
        hmac.new(derived, c, hashlib.sha256).hexdigest(),  # the kit's scheme, guessed key
    ]


def test_pseudonyms_cannot_be_reversed_by_enumerating_upns_without_the_key():
    project = "mini"
    # every UPN of one school (LA 823, establishment 1234): about 15,000 candidates
    candidates = [f"A8231234{n:05d}" for n in range(15_000)]
    pupils = [candidates[17], candidates[4_321], candidates[14_999]]
    shown = set(pseudonymise(pd.Series(pupils), project).str[1:13])

    def found(guesses: list[str]) -> set[str]:
        return {
            c for c in candidates for g in guesses
            if any(d[:12] in shown for d in _attacks(c, g, project))
        }

    # the attack works when the key is known (so the test can fail) ...
    secret = key_file(project).read_text().strip()
    assert found([secret]) == set(pupils)
    # ... and finds nobody with an empty or guessable key
    assert found(["", project, project.upper(), "P", "evalkit", "salt"]) == set()


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_key_file_is_private_and_reused(own_config):
    first = one("A123")
    path = own_config / "keys" / "mini.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(own_config.stat().st_mode) == 0o700
    text = path.read_text()
    assert len(text.strip()) == 64 and int(text, 16)  # 32 random bytes as hex
    assert sorted(p.name for p in path.parent.iterdir()) == ["mini.key"]  # no temporary file
    forget_keys()  # as a new process would
    assert one("A123") == first
    assert path.read_text() == text
    assert key_location("mini") == f"the file {path}"


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_key_file_readable_by_others_is_warned_about(own_config):
    one("A123")
    path = own_config / "keys" / "mini.key"
    path.chmod(0o644)
    forget_keys()
    with pytest.warns(KeyFileWarning, match="chmod 600"):
        one("A123")


def test_config_folder_precedence(monkeypatch, tmp_path):
    assert key_file("mini") == tmp_path / "config" / "keys" / "mini.key"
    monkeypatch.delenv(CONFIG_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert key_file("mini") == tmp_path / "xdg" / "evalkit" / "keys" / "mini.key"
    if POSIX:
        monkeypatch.delenv("XDG_CONFIG_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert key_file("mini") == tmp_path / "home" / ".config" / "evalkit" / "keys" / "mini.key"
    with pytest.raises(EvalKitError, match="not a valid project id"):
        key_file("../escape")


def test_environment_variable_wins(monkeypatch, own_config):
    from_file = one("A123")
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    assert one("A123") != from_file
    assert one("A123", "other") and not (own_config / "keys" / "other.key").exists()
    assert key_location("mini") == f"the environment variable {KEY_ENV}"
    assert ENV_KEY not in key_location("mini")


@pytest.mark.parametrize("key", ["", "   ", "short-key", "fifteen-chars!!"])
def test_too_short_key_is_refused_in_one_line(monkeypatch, key):
    monkeypatch.setenv(KEY_ENV, key)
    with pytest.raises(EvalKitError, match=f"{KEY_ENV} is (empty|too short)") as err:
        one("A123")
    message = str(err.value)
    assert "\n" not in message and (not key.strip() or key not in message)


def test_too_short_key_file_is_refused(own_config):
    (own_config / "keys").mkdir(parents=True)
    (own_config / "keys" / "mini.key").write_text("abc\n")
    os.chmod(own_config / "keys" / "mini.key", 0o600)
    with pytest.raises(EvalKitError, match=r"mini\.key is too short \(3 characters"):
        key_fingerprint("mini")


def test_fingerprint_identifies_the_key_without_showing_it(monkeypatch):
    from_file = key_fingerprint("mini")
    assert len(from_file) == 12 and from_file == key_fingerprint("mini")
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    assert key_fingerprint("mini") != from_file
    assert key_fingerprint("mini") != key_fingerprint("other")


@pytest.mark.parametrize("use_env", [True, False])
def test_provenance_records_the_fingerprint_never_the_key(mini_project, monkeypatch,
                                                          own_config, use_env):
    if use_env:
        monkeypatch.setenv(KEY_ENV, ENV_KEY)
    params = load_params(mini_project)
    project = Project(params=params, toc=load_toc(params.resolve(params.theory_of_change)),
                      data=ProjectData({}, {}), results_file=mini_project.parent / "r.json")
    dumped = json.dumps(project.provenance())
    secret = ENV_KEY if use_env else (own_config / "keys" / "mini.key").read_text().strip()
    assert secret not in dumped
    assert project.provenance()["pseudonym_key_fingerprint"] == key_fingerprint("mini")
    assert "pseudonym_salt" not in dumped


@pytest.mark.parametrize("use_env", [True, False])
def test_validate_shows_where_the_key_is_but_never_the_key(mini_project, monkeypatch,
                                                           own_config, capsys, use_env):
    if use_env:
        monkeypatch.setenv(KEY_ENV, ENV_KEY)
    assert main(["validate", str(mini_project)]) == 0
    out = capsys.readouterr()
    secret = ENV_KEY if use_env else (own_config / "keys" / "mini.key").read_text().strip()
    assert secret not in out.out + out.err
    assert f"fingerprint {key_fingerprint('mini')}" in out.out
    assert key_location("mini") in out.out


def test_validate_lists_dropped_headers_escaped(mini_project, capsys):
    raw = mini_project.parent.parent / "data" / "raw" / "mini" / "pupils.csv"
    lines = raw.read_text().splitlines()
    lines[0] += ",Notes \u202e on Amy"  # a right-to-left override disguises terminal text
    raw.write_text("\n".join(line if i == 0 else line + ",x" for i, line in enumerate(lines)))
    assert main(["validate", str(mini_project)]) == 0
    out = capsys.readouterr().out
    assert "pupils: columns dropped on reading" in out and "'Date Joined'" in out
    assert "\u202e" not in out and "'Notes \\u202e on Amy'" in out


def test_validate_refuses_a_csv_with_terminal_control_characters(mini_project, capsys):
    raw = mini_project.parent.parent / "data" / "raw" / "mini" / "pupils.csv"
    lines = raw.read_text().splitlines()
    lines[0] += ",Notes \x1b[2J on Amy"  # an escape sequence that would clear a terminal
    raw.write_text("\n".join(line if i == 0 else line + ",x" for i, line in enumerate(lines)))
    assert main(["validate", str(mini_project)]) == 1
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "Amy" not in out.out + out.err
    assert "pupils.csv" in out.err and "control characters" in out.err


def test_validate_refuses_a_short_key_without_a_traceback(mini_project, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, "too-short")
    assert main(["validate", str(mini_project)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "too-short" not in out.out + out.err
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and f"{KEY_ENV} is too short" in lines[0]


RACES = [f"race{i}" for i in range(20)]


def _first_use(barrier, results) -> None:
    forget_keys()
    barrier.wait()
    try:  # each project's key is made by all the processes at once
        results.put(tuple(one("A123", project) for project in RACES))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(f"error: {exc}")


def test_processes_creating_the_key_at_once_end_with_one_key(own_config):
    method = "fork" if sys.platform == "linux" else "spawn"
    ctx = multiprocessing.get_context(method)
    n = 16
    barrier, results = ctx.Barrier(n), ctx.Queue()
    workers = [ctx.Process(target=_first_use, args=(barrier, results)) for _ in range(n)]
    for w in workers:
        w.start()
    try:
        seen = [results.get(timeout=60) for _ in range(n)]
    except queue.Empty:
        seen = ["a process died"]
    for w in workers:
        w.join(timeout=60)
    assert len(set(seen)) == 1 and isinstance(seen[0], tuple), set(seen)
    forget_keys()
    assert tuple(one("A123", project) for project in RACES) == seen[0]
    assert sorted(p.name for p in (own_config / "keys").iterdir()) == sorted(
        f"{project}.key" for project in RACES)  # and no temporary files left
