"""Data intake: mapping, dates, markers, identifiers, and one clear message per problem."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from evaluation.errors import DataError
from evaluation.intake import load_data, write_processed
from evaluation.params import load_params
from evaluation.pseudonyms import pseudonymise


def _csv(params_file, text):
    """Replace the pupils file, keeping only the mapping entries its header has."""
    path = params_file.parent.parent / "data" / "raw" / "mini" / "pupils.csv"
    path.write_text(text)
    header = text.splitlines()[0].split(",")
    doc = yaml.safe_load(params_file.read_text())
    mapping = doc["data"]["pupils"]["columns"]
    doc["data"]["pupils"]["columns"] = {k: v for k, v in mapping.items() if k in header}
    params_file.write_text(yaml.safe_dump(doc))
    return path


def test_reads_maps_and_types(mini_project):
    data = load_data(load_params(mini_project))
    pupils = data["pupils"]
    assert list(pupils.columns[:3]) == ["pupil_id", "school_id", "year_group"]
    assert pupils["fsm"].tolist() == [True, False, True, False]
    assert pupils["year_group"].dtype == "Int64"
    # not a kit column: dropped on reading, its header listed for the terminal only
    assert "Date Joined" not in pupils
    report = data.reports["pupils"]
    assert report.dropped_columns == ["Date Joined"] and report.n_dropped_columns == 1
    assert data.dropped_columns() == {"pupils": ["Date Joined"]}
    assert report.suppressed == {}
    assert report.rows == 4 and report.pupils == 4 and report.schools == 2


def test_suppression_markers_are_counted(mini_project):
    _csv(mini_project, "Pupil No,School,Year Grp\nA1,S1,3\nA2,S1,x\nA3,S1,c\n")
    data = load_data(load_params(mini_project))
    assert data.reports["pupils"].suppressed == {"year_group": 2}
    assert data["pupils"]["year_group"].isna().sum() == 2


def test_identifiers_are_dropped_and_ids_pseudonymised(mini_project):
    data = load_data(load_params(mini_project))
    pupils = data["pupils"]
    assert "first_name" not in pupils and "surname" not in pupils
    assert sorted(data.reports["pupils"].dropped_identifiers) == ["first_name", "surname"]
    assert not pupils["pupil_id"].isin(["A001", "A002", "A003", "A004"]).any()
    assert pupils["pupil_id"].str.match(r"^P[0-9a-f]{16}$").all()
    # the same pupil gets the same pseudonym in every table of the project
    again = pseudonymise(pd.Series(["A001"]), "mini")
    assert again[0] == pupils["pupil_id"][0]


def test_misspelt_mapping_names_the_header_and_suggests(mini_project):
    doc = yaml.safe_load(mini_project.read_text())
    doc["data"]["pupils"]["columns"]["Year Group"] = doc["data"]["pupils"]["columns"].pop(
        "Year Grp")
    mini_project.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"pupils.csv: the column mapping .* names 'Year Group', "
                       r"which is not a column of the file. Did you mean 'Year Grp'\?"):
        load_data(load_params(mini_project))


def test_missing_required_column_says_what_to_do(mini_project):
    doc = yaml.safe_load(mini_project.read_text())
    del doc["data"]["pupils"]["columns"]["School"]
    mini_project.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"needs a column 'school_id'.*add `'<their header>': "
                       r"school_id`"):
        load_data(load_params(mini_project))


@pytest.mark.parametrize("bad", ["2021/13/01", "13.01.2021", "Sept 2021", "31/02/2021"])
def test_impossible_dates_name_file_column_and_rows(tmp_path, bad):
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["referrals"] = {"path": "data/raw/mini/referrals.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    (tmp_path / "data/raw/mini/referrals.csv").write_text(
        "referral_id,pupil_id,referral_date\nR1,A001,01/10/2021\nR2,A002," + bad + "\n"
    )
    with pytest.raises(DataError, match=r"referrals.csv, column 'referral_date': row 3 hold "
                       r"dates that are not dd/mm/yyyy or yyyy-mm-dd"):
        load_data(load_params(params_file))


def test_duplicate_pupil_is_an_error(mini_project):
    _csv(mini_project, "Pupil No,School\nA1,S1\nA2,S1\nA1,S2\n")
    with pytest.raises(DataError, match=r"column 'pupil_id': rows 2, 4 .*duplicates"):
        load_data(load_params(mini_project))


def test_negative_count_names_rows(tmp_path):
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {"path": "data/raw/mini/excl.csv"}
    params_file.write_text(yaml.safe_dump(doc))
    (tmp_path / "data/raw/mini/excl.csv").write_text(
        "school_id,period_start,roll,suspensions\nS1,01/09/2021,300,4\nS1,01/01/2022,300,-2\n"
    )
    with pytest.raises(DataError, match=r"excl.csv, column 'suspensions': row 3 .*below 0"):
        load_data(load_params(params_file))


def test_text_in_a_number_column(mini_project):
    _csv(mini_project, "Pupil No,School,Year Grp\nA1,S1,3\nA2,S1,Year four\n")
    with pytest.raises(DataError, match=r"column 'year_group': row 3 are not numbers"):
        load_data(load_params(mini_project))


def test_year_labels_are_read_by_the_built_in_list(mini_project):
    _csv(mini_project, "Pupil No,School,Year Grp\nA1,S1,3\nA2,S1,Year 4\nA3,S1,R\n")
    data = load_data(load_params(mini_project))
    assert data["pupils"]["year_group"].tolist() == [3, 4, 0]
    assert data.reports["pupils"].recoded == {"year_group": 2}


def test_value_outside_allowed_list(mini_project):
    _csv(mini_project, "Pupil No,School,SEN\nA1,S1,Q\n")
    with pytest.raises(DataError, match=r"column 'sen_status': row 2 \(for example \"Q… "
                       r"\(1 character\)\"\) hold values outside the allowed list.*"
                       r"`recode: \{sen_status: \{<their value>: <kit value>\}\}` under "
                       r"data.pupils in mini.yaml"):
        load_data(load_params(mini_project))


def test_excel_sheet_is_read(tmp_path):
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    frame = pd.DataFrame({"Pupil No": ["A1", "A2"], "School": ["S1", "S1"],
                          "Joined": pd.to_datetime(["2021-09-01", "2022-01-04"])})
    xlsx = tmp_path / "data/raw/mini/pupils.xlsx"
    frame.to_excel(xlsx, sheet_name="Export", index=False)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["pupils"] = {"path": "data/raw/mini/pupils.xlsx", "sheet": "Export",
                             "columns": {"Pupil No": "pupil_id", "School": "school_id"}}
    params_file.write_text(yaml.safe_dump(doc))
    data = load_data(load_params(params_file))
    assert len(data["pupils"]) == 2
    doc["data"]["pupils"]["sheet"] = "Sheet9"
    params_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"Sheet9.*Set `sheet:`"):
        load_data(load_params(params_file))


def test_raw_untouched_and_processed_written(mini_project):
    params = load_params(mini_project)
    raw = params.resolve("data/raw/mini/pupils.csv")
    before = raw.read_bytes()
    out = write_processed(params, load_data(params))
    assert raw.read_bytes() == before
    assert (out / "pupils.csv").is_file() and (out / "intake.json").is_file()
    assert out == params.root / "data" / "processed" / "mini"
    assert "Amy" not in (out / "pupils.csv").read_text()


def test_cache_is_used_only_for_unchanged_files(mini_project):
    params = load_params(mini_project)
    write_processed(params, load_data(params))
    cached = load_data(params)
    assert cached["pupils"].equals(load_data(params, use_cache=False)["pupils"])
    # change the raw file: the cache must not be used
    raw = params.resolve("data/raw/mini/pupils.csv")
    raw.write_text(raw.read_text().replace("A004,Dev", "A005,Dev"))
    fresh = load_data(params)
    assert fresh["pupils"]["pupil_id"].iloc[3] == pseudonymise(pd.Series(["A005"]), "mini")[0]


def test_official_statistics_file_with_academic_years_and_row_filter(tmp_path):
    from tests.conftest import make_project

    params_file = make_project(tmp_path)
    doc = yaml.safe_load(params_file.read_text())
    doc["data"]["exclusions"] = {
        "path": "data/raw/mini/la.csv",
        "where": {"level": "Local authority"},
        "columns": {"la_name": "school_id", "year": "period_start", "headcount": "roll",
                    "fixed_excl": "suspensions"},
    }
    params_file.write_text(yaml.safe_dump(doc))
    (tmp_path / "data/raw/mini/la.csv").write_text(
        "year,level,la_name,headcount,fixed_excl\n"
        "201112,National,England,100000,4000\n"
        "201112,Local authority,Leeds,5000,x\n"
        "2012/13,Local authority,Leeds,5100,210\n"
        "2013-14,Local authority,Leeds,5200,c\n"
    )
    data = load_data(load_params(params_file))
    table = data["exclusions"]
    assert len(table) == 3
    assert table["period_start"].dt.strftime("%Y-%m-%d").tolist() == [
        "2011-09-01", "2012-09-01", "2013-09-01"]
    assert table["suspensions"].isna().sum() == 2
    assert data.reports["exclusions"].suppressed == {"suspensions": 2}
    # an academic year whose halves do not follow on is not a date
    (tmp_path / "data/raw/mini/la.csv").write_text(
        "year,level,la_name,headcount,fixed_excl\n201215,Local authority,Leeds,5000,3\n")
    with pytest.raises(DataError, match=r"column 'period_start': row 2 hold dates"):
        load_data(load_params(params_file))


def test_a_file_with_headers_only_is_read_as_an_empty_table(mini_project):
    _csv(mini_project, "Pupil No,School,Year Grp\n")
    data = load_data(load_params(mini_project))
    assert len(data["pupils"]) == 0 and data.reports["pupils"].rows == 0
