"""Write tests/data/new_user/mis_export.xlsx: a synthetic export shaped like a school MIS's
SDQ tracker (issue 20), for the new-user test. No real person: every name is an obvious
placeholder (NATO-alphabet forenames, surnames such as "Placeholdington") and the admission
numbers are made up. Run: python tests/data/new_user/make_workbook.py

The workbook has what such exports have: title lines above the headers, the pupil's
admission number and legal names, a registration group, "Year 3" year groups, the DfE's
SEN codes N/K/E, the SDQ wide (one column per term), blank cells (pupils who left before
the summer, a missing SEN code), a Notes column, and a hidden, stale sheet before the
visible one.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
FORENAMES = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel",
             "India", "Juliet", "Kilo", "Lima", "Mike", "November", "Oscar", "Papa",
             "Quebec", "Romeo", "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "Xray",
             "Yankee", "Zulu"]
SURNAMES = ["Placeholdington", "Madeupson", "Fictionalby", "Testcasey", "Sampleton",
            "Notrealby"]
SCHOOLS = ["Elm Primary", "Oak Primary", "Ash Junior"]
HEADERS = ["Adno", "Legal Surname", "Forename", "Reg", "Year", "School", "SEN",
           "SDQ Total (Autumn)", "SDQ Total (Summer)", "Notes"]


def rows() -> list[list]:
    rng = random.Random(20)
    out = []
    for i, forename in enumerate(FORENAMES):
        year = 3 + i % 4
        autumn = rng.randint(12, 26)
        summer = max(0, autumn - rng.randint(-2, 7))
        sen = ["N", "N", "K", "N", "E", "K"][i % 6]
        out.append([
            f"{9100 + i:06d}", SURNAMES[i % len(SURNAMES)], forename,
            f"{year}{'ABC'[i % 3]}", f"Year {year}", SCHOOLS[i % 3],
            None if i == 7 else sen,                 # one SEN code not entered
            autumn,
            None if i in (4, 19) else summer,        # two pupils left before the summer
            f"Spoke to {forename}'s carer" if i % 5 == 0 else None,
        ])
    return out


def build(path: Path = HERE / "mis_export.xlsx") -> Path:
    book = openpyxl.Workbook()
    stale = book.active
    stale.title = "Old export"                       # hidden and stale: must not be read
    stale.append(HEADERS)
    stale.append(["009100", "Placeholdington", "Alpha", "3A", "Year 3", "Elm Primary", "N",
                  40, 0, None])
    stale.sheet_state = "hidden"
    sheet = book.create_sheet("SDQ tracker")
    sheet.append(["Springfield Federation: SDQ tracker 2023/24"])
    sheet.append([f"Exported {dt.date(2024, 7, 15):%d/%m/%Y} from the MIS"])
    sheet.append([])
    sheet.append(HEADERS)
    for row in rows():
        sheet.append(row)
    book.active = 1
    # a fixed creation time, so the file is the same bytes at each build
    book.properties.created = book.properties.modified = dt.datetime(2024, 7, 15, 9, 0)
    book.save(path)
    return path


if __name__ == "__main__":
    print(build())
