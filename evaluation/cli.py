"""The ``evalkit`` command: run, validate and start evaluation projects.

    evalkit run params/demo.yaml            # execute a project's reports
    evalkit run params/demo.yaml --pdf      # ... and the board pack, board_pack.pdf
    evalkit run params/ --workers 2         # every project in a folder, two at a time
    evalkit validate params/demo.yaml       # check parameters, theory of change and data
    evalkit inspect export.xlsx             # what the kit would read, and a data: block
    evalkit new my_project                  # scaffold params/my_project.yaml, its ToC and
                                            # a data-entry workbook

Problems the user can fix are printed as one line each, never as a traceback, and the
command exits non-zero if any project failed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation import __version__
from evaluation.errors import EvalKitError

if TYPE_CHECKING:
    from evaluation.params import ProblemsError

NEW_PARAMS = """\
# Parameters of the evaluation project '{name}'. See README.md, "Starting a new project".
# Paths are relative to the folder that holds params/.
project:
  id: {name}
  title: "{title}"
  organisation: ""
  period: {{start: {start}, end: {end}}}
theory_of_change: toc_templates/{name}.yaml
# Pupil numbers become keyed pseudonyms; the key is kept outside this folder (README,
# "Data protection"). Never put a key or a salt in this file.

# One entry per data file. The entry's name is the kind of table (pupils, scores,
# exclusions, referrals, interventions, reviews, attendance, suspensions); `columns` maps
# the school's own headers to the kit's names (docs/tables.md lists them).
# `evalkit inspect <file>` prints this block for a school's export, ready to paste. For new
# data, fill in data/raw/{name}/{name}_data_entry.xlsx (the kit's own headers: no
# `columns:` needed) and give each sheet as a source, e.g.
#   scores: {{path: data/raw/{name}/{name}_data_entry.xlsx, sheet: scores}}
data:
  pupils:
    path: data/raw/{name}/pupils.csv
    columns: {{}}

# Which reports to produce. Add baseline_followup, its or referral_tracking when you have
# their data; the summary is written last.
analyses:
  overview: {{}}
  summary: {{}}

report:
  audience: board
  min_count: 5        # counts below this are withheld from board-facing tables
"""

NEW_PUPILS = "pupil_id,school_id,year_group,sex,sen_status,fsm,eal,ethnicity\n"


def _cmd_run(args: argparse.Namespace) -> int:
    from evaluation.runner import find_params, run_projects

    files = find_params(args.params)
    if not files:
        print("evalkit: no parameters files found", file=sys.stderr)
        return 2
    outcomes = run_projects(files, workers=args.workers, pdf=args.pdf)
    failed = 0
    for o in outcomes:
        status = "ok    " if o.ok else "FAILED"
        print(f"{status} {o.project} ({o.seconds:.0f} s): {o.message}", flush=True)
        failed += not o.ok
    if failed:
        print(f"evalkit: {failed} of {len(outcomes)} projects failed", file=sys.stderr)
    return 1 if failed else 0


def _shown(text: object) -> str:
    """Text from the user's files as the terminal may print it: control characters escaped,
    so a hostile key or header cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_problems(params_file: Path, exc: ProblemsError) -> None:
    """Every problem of the parameters and theory of change, grouped by file, one line each
    naming the key."""
    n = len(exc.problems)
    print(f"invalid {params_file}: {n} problem{'' if n == 1 else 's'}", file=sys.stderr)
    for file, problems in exc.by_file().items():
        print(f"  in {_relative(file)}:", file=sys.stderr)
        for problem in problems:
            print(f"    {_shown(problem)}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from evaluation.params import ProblemsError, project_notes
    from evaluation.pseudonyms import key_fingerprint, key_location
    from evaluation.runner import find_params, validate_project

    failed = 0
    for f in find_params(args.params):
        try:
            # every problem at once: parameters, theory of change, every data file (all
            # the problems of each), their links and the notebooks
            params, toc, data = validate_project(f)
            project_id = params.project.id
            fingerprint = key_fingerprint(project_id)  # creates the key file if need be
            key = f"{key_location(project_id)} (fingerprint {fingerprint})"
            # What intake dropped, by header: shown here, in the user's terminal, and never
            # written to any report or processed file.
            dropped = data.dropped_columns()
            reading = data.notes()
        except ProblemsError as exc:
            _print_problems(f, exc)
            failed += 1
            continue
        except EvalKitError as exc:
            print(f"invalid {f}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"valid   {f}: project '{project_id}', "
              f"{len(params.data)} data sources, analyses: {', '.join(params.enabled)}")
        print(f"        pseudonym key: {key}")
        for note in project_notes(params, toc):
            print(f"        note: {_shown(note)}")
        for name, headers in dropped.items():
            # repr: quoted, with control characters escaped, so a hostile header cannot
            # drive the terminal
            print(f"        {name}: columns dropped on reading (not used by the kit): "
                  + ", ".join(repr(str(h)) for h in headers))
        for name, notes in reading.items():  # encoding, title lines, recoding: no values
            for note in notes:
                print(f"        {name}: {_shown(note)}")
    return 1 if failed else 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from evaluation.inspect import inspect_file, render

    inspection = inspect_file(args.file, sheet=args.sheet, header_row=args.header_row)
    print("\n".join(_shown(line) for line in render(inspection).splitlines()))
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    import datetime as dt

    from evaluation.params import valid_project_id

    name = args.name
    if not valid_project_id(name):
        print(f"evalkit: '{name}' is not a valid project id (letters, digits, - and _)",
              file=sys.stderr)
        return 2
    root = Path(args.root)
    params_file = root / "params" / f"{name}.yaml"
    toc_file = root / "toc_templates" / f"{name}.yaml"
    blank = root / "toc_templates" / "blank.yaml"
    for path in (params_file, toc_file):
        if path.exists():
            print(f"evalkit: {path} already exists; choose another name", file=sys.stderr)
            return 2
    if not blank.is_file():
        print(f"evalkit: the blank template {blank} is missing", file=sys.stderr)
        return 2
    today = dt.date.today()
    params_file.parent.mkdir(parents=True, exist_ok=True)
    params_file.write_text(
        NEW_PARAMS.format(
            name=name, title=name.replace("_", " ").capitalize(),
            start=today.replace(month=9, day=1) if today.month >= 9
            else today.replace(year=today.year - 1, month=9, day=1),
            end=today,
        ),
        encoding="utf-8",
    )
    toc_file.write_text(blank.read_text(encoding="utf-8"), encoding="utf-8")
    raw = root / "data" / "raw" / name
    raw.mkdir(parents=True, exist_ok=True)
    if not (raw / "pupils.csv").exists():
        (raw / "pupils.csv").write_text(NEW_PUPILS, encoding="utf-8")
    from evaluation.entry_templates import write_entry_workbook

    workbook = write_entry_workbook(toc_file, raw / f"{name}_data_entry.xlsx")
    print(f"created {params_file}\ncreated {toc_file}\ncreated {raw}/pupils.csv (headers only)")
    if workbook is not None:
        print(f"created {workbook} (a data-entry workbook: one sheet per table the theory "
              "of change needs, with the kit's headers and drop-down lists)")
    print(f"Next: put the school's exports in {raw}/, edit both files, then "
          f"`evalkit validate {params_file}`.")
    return 0


#: The examples ``evalkit --help`` ends with (the module docstring's, without markup).
EXAMPLES = """examples:
  evalkit run params/demo.yaml            execute a project's reports
  evalkit run params/demo.yaml --pdf      ... and the board pack, board_pack.pdf
  evalkit run params/ --workers 2         every project in a folder, two at a time
  evalkit validate params/demo.yaml       check parameters, theory of change and data
  evalkit inspect export.xlsx             what the kit would read; a data: block to paste
  evalkit new my_project                  start params/my_project.yaml and its theory of change

'evalkit <command> --help' explains each command."""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="evalkit", formatter_class=raw, epilog=EXAMPLES,
        description="evalkit: run, validate and start evaluation projects.")
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    run = sub.add_parser(
        "run", help="execute the reports of one or more projects", formatter_class=raw,
        description="Validate each project, run its notebooks and publish its reports in "
                    "reports/<project>/ (index.html opens them).",
        epilog="examples:\n"
               "  evalkit run params/demo.yaml\n"
               "  evalkit run params/demo.yaml --pdf      also write board_pack.pdf\n"
               "  evalkit run params/ --workers 2         every project in params/")
    run.add_argument("params", nargs="+", help="parameters files or folders of them")
    run.add_argument("--workers", type=int, default=1, help="projects run in parallel")
    run.add_argument("--pdf", action="store_true",
                     help="also write reports/<project>/board_pack.pdf (needs WeasyPrint)")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser(
        "validate", help="check parameters, theory of change and data", formatter_class=raw,
        description="Check everything a run would check, and print every problem found, one "
                    "line each, without running any report.",
        epilog="examples:\n"
               "  evalkit validate params/demo.yaml\n"
               "  evalkit validate params/                every project in params/")
    validate.add_argument("params", nargs="+", help="parameters files or folders of them")
    validate.set_defaults(func=_cmd_validate)

    inspect = sub.add_parser(
        "inspect", help="show what the kit would read from a file", formatter_class=raw,
        description="Show a CSV file's or workbook's sheets (and which are hidden), the header "
                    "row found, each column's type and the kit column it matches (values only "
                    "where a column cannot hold identifiers), and suggest the parameters' "
                    "data: block that reads it.",
        epilog="example:\n  evalkit inspect data/raw/my_project/export.xlsx")
    inspect.add_argument("file", help="a CSV file or Excel workbook")
    inspect.add_argument("--sheet", help="only this sheet (default: every visible sheet)")
    inspect.add_argument("--header-row", type=int, default=None,
                         help="the line that holds the headers (default: found)")
    inspect.set_defaults(func=_cmd_inspect)

    new = sub.add_parser(
        "new", help="start a new project from a template", formatter_class=raw,
        description="Write params/<name>.yaml, a theory of change to fill in and a "
                    "data-entry workbook for the tables it needs.",
        epilog="example:\n"
               "  evalkit new nurture_groups              then edit params/nurture_groups.yaml")
    new.add_argument("name", help="the project's id: letters, digits and underscores")
    new.add_argument("--root", default=".", help="the kit folder (default: here)")
    new.set_defaults(func=_cmd_new)
    return parser


_default_format_warning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    from evaluation.pseudonyms import KeyFileWarning

    if issubclass(category, KeyFileWarning):  # the user's to fix: one line, no source
        return f"evalkit: warning: {message}\n"
    return _default_format_warning(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _format_warning
    try:
        return args.func(args)
    except EvalKitError as exc:  # anything the user can fix: one line, no traceback
        print(f"evalkit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        warnings.formatwarning = _default_format_warning


if __name__ == "__main__":
    sys.exit(main())
