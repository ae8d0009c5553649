"""The corpus of broken and hostile inputs (tests/hostile/cases.yaml), run through
`evalkit validate` and intake as a user would: each case must give its one clear message,
or keep its property (identifiers absent, formulas neutralised, no code run)."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluation import cli
from evaluation.intake import load_data, processed_dir, write_processed
from evaluation.params import load_params

REPO = Path(__file__).resolve().parents[1]
CASES = yaml.safe_load((Path(__file__).parent / "hostile" / "cases.yaml").read_text("utf-8"))
ROWS_KEPT = 30  # every demo table cut to its first rows: validation is per table


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small copy of the demo project: CSVs cut short, the pupils sheet saved as CSV."""
    root = tmp_path_factory.mktemp("hostile-base")
    raw = root / "data" / "raw" / "demo"
    raw.mkdir(parents=True)
    for csv in (REPO / "data" / "raw" / "demo").glob("*.csv"):
        lines = csv.read_text("utf-8").splitlines(keepends=True)
        if csv.name == "exclusions.csv":  # two schools' whole series, so the ITS can run
            lines = lines[:1] + [x for x in lines[1:] if x.startswith(("SCH01,", "SCH02,"))]
        else:
            lines = lines[: ROWS_KEPT + 1]
        (raw / csv.name).write_text("".join(lines), "utf-8")
    pupils = pd.read_excel(REPO / "data" / "raw" / "demo" / "pupils.xlsx", sheet_name="Pupils",
                           engine="calamine", dtype=str)
    # Pupils with scores, half in each group, with all their scores, and the referred
    # pupils' whole attendance: validate computes what the analyses need (pairs in each
    # group, attendance around referrals), so the cut project must have them.
    scores = pd.read_csv(REPO / "data" / "raw" / "demo" / "scores.csv", dtype=str,
                         keep_default_na=False)
    pupils = (pupils[pupils["UPN"].isin(scores["UPN"])]
              .groupby("Programme Group", group_keys=False).head(ROWS_KEPT // 2).sort_index())
    pupils.to_csv(raw / "pupils.csv", index=False)
    scores[scores["UPN"].isin(pupils["UPN"])].to_csv(raw / "scores.csv", index=False)
    referrals = pd.read_csv(raw / "referrals.csv", dtype=str, keep_default_na=False)
    attendance = pd.read_csv(REPO / "data" / "raw" / "demo" / "attendance.csv", dtype=str,
                             keep_default_na=False)
    attendance[attendance["UPN"].isin(referrals["UPN"])].to_csv(raw / "attendance.csv",
                                                                 index=False)
    (root / "params").mkdir()
    (root / "toc_templates").mkdir()
    shutil.copy(REPO / "toc_templates" / "demo.yaml", root / "toc_templates" / "demo.yaml")
    params = yaml.safe_load((REPO / "params" / "demo.yaml").read_text("utf-8"))
    params["data"]["pupils"]["path"] = "data/raw/demo/pupils.csv"
    params["data"]["pupils"].pop("sheet", None)
    (root / "params" / "demo.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    return root


def _set(tree: dict, dotted: str, value: object) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        tree = tree[int(key)] if isinstance(tree, list) else tree.setdefault(key, {})
    if value is None:
        tree.pop(keys[-1], None)
    else:
        tree[keys[-1]] = value


def _edit_cell(path: Path, header: str, line: int, value: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[line - 2, header] = value  # the header is line 1
    frame.to_csv(path, index=False)


def _apply(case: dict, root: Path) -> Path:
    raw = root / "data" / "raw" / "demo"
    params_file = root / "params" / "demo.yaml"
    if "params_text" in case:
        params_file.write_text(case["params_text"], "utf-8")
        return params_file
    params = yaml.safe_load(params_file.read_text("utf-8"))
    for key, value in (case.get("set") or {}).items():
        _set(params, key, value)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    if "toc_set" in case:
        toc_file = root / "toc_templates" / "demo.yaml"
        toc = yaml.safe_load(toc_file.read_text("utf-8"))
        for key, value in case["toc_set"].items():
            _set(toc, key, value)
        toc_file.write_text(yaml.safe_dump(toc, sort_keys=False), "utf-8")
    for key in ("cell", "cell2"):
        if key in case:
            name, header, line, value = case[key]
            _edit_cell(raw / name, header, line, value)
    if "column" in case:
        name, header, value = case["column"]
        frame = pd.read_csv(raw / name, dtype=str, keep_default_na=False)
        frame[header] = value
        frame.to_csv(raw / name, index=False)
    if "text" in case:
        name, content = case["text"]
        (raw / name).write_bytes(content.encode(case.get("encoding", "utf-8")))
    if "hex" in case:
        name, content = case["hex"]
        (raw / name).write_bytes(bytes.fromhex(content))
    return params_file


def _validate(params_file: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["validate", str(params_file)])
    return code, out.getvalue() + err.getvalue()


def _processed_text(params_file: Path) -> str:
    """Everything intake writes for the project, read as text (pickles as raw bytes)."""
    params = load_params(params_file)
    folder = write_processed(params, load_data(params, use_cache=False))
    assert folder == processed_dir(params)
    parts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*"))
             if p.is_file()]
    return "\n".join(parts)


def test_the_corpus_is_large_and_named_uniquely() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_hostile_input(case: dict, base_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(base_project, root)
    if "no_file" in case:
        Path(case["no_file"]).unlink(missing_ok=True)
    params_file = _apply(case, root)

    code, output = _validate(params_file)
    assert "Traceback" not in output, output
    if "error" in case:
        assert code == 1, f"accepted, but should have been refused: {output}"
        assert len(output.strip().splitlines()) <= 12, output  # one message, not a dump
        for fragment in case["error"]:
            assert str(fragment).lower() in output.lower(), (fragment, output)
    else:
        assert code == 0, output
    processed = _processed_text(params_file) if code == 0 else ""
    for planted in case.get("absent", []):
        assert str(planted) not in output + processed, f"{planted!r} leaked"
    for planted in case.get("absent_processed", []):
        assert str(planted) not in processed, f"{planted!r} leaked into data/processed"
    if code == 0:
        folder = root / "data" / "processed" / "demo"
        for name, text in (case.get("processed") or {}).items():
            assert text in (folder / name).read_text("utf-8"), name
    if "no_file" in case:
        assert not Path(case["no_file"]).exists(), "code from the parameters file ran"
