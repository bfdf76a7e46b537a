"""The README's troubleshooting table, row by row: each bad input, given to Snakemake, stops the run
before any job with the row's one-line message (or, for a warning, prints it once and runs on).

The messages are read from README.md, so the table and the behaviour cannot drift apart; each
row's input is here, under the row's id.
"""
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_workflow import run_workflow

README = Path(__file__).resolve().parents[1] / "README.md"
#: The user's data for the rows about data files: 8 groups of 5 rows, a random slope of x.
USER = {"scenario": "trouble", "data": {"source": "data.csv"}, "model": {"formula": "y ~ x + (1 + x | g)"},
        "imputation": {"m": 2, "iterations": 2}}


def good_data(seed: int = 0) -> pd.DataFrame:
    """Complete data the model fits: y and x numbers, g 8 groups of 5."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": np.repeat(np.arange(1, 9), 5), "x": rng.normal(size=40).round(2),
                         "y": rng.normal(size=40).round(2)})


def with_cells(column: str, cells: dict) -> str:
    """The good data as CSV text with some cells of ``column`` replaced (row position -> text)."""
    data = good_data().astype({column: object})
    for row, text in cells.items():
        data.loc[row, column] = text
    return data.to_csv(index=False)


#: The user's data with two files imputed elsewhere (nothing was missing, so each is a copy of the data).
EXTERNAL = {**USER, "imputation": {"method": "external", "files": ["imp*.csv"]}}


def external(imp2: pd.DataFrame, imp1: pd.DataFrame | None = None) -> dict:
    """The files of the external rows: the good data, imp1.csv (a copy of them unless given) and imp2.csv."""
    return {"data.csv": good_data().to_csv(index=False),
            "imp1.csv": (good_data() if imp1 is None else imp1).to_csv(index=False),
            "imp2.csv": imp2.to_csv(index=False)}


def formula(text: str) -> dict:
    """The default study with another model formula."""
    return {"model": {"formula": text}}


#: Row id -> (config merged over the default, files written to the working directory).
CASES = {
    "unknown-key": ({"imputaton": {"m": 3}}, {}),
    "unknown-nested-key": ({"data": {"simulate": {"n_school": 40}}}, {}),
    "wrong-type": ({"imputation": {"m": "five"}}, {}),
    "probability-out-of-range": ({"missingness": {"prob": {"ses": 1.0}}}, {}),
    "m-below-2": ({"imputation": {"m": 1}}, {}),
    "empty-file": (USER, {"data.csv": ""}),
    "header-only-file": (USER, {"data.csv": "g,x,y\n"}),
    "repeated-column": (USER, {"data.csv": good_data().assign(y2=1.0).to_csv(index=False).replace("y2", "x", 1)}),
    "semicolon-separated": (USER, {"data.csv": good_data().to_csv(index=False, sep=";", decimal=",")}),
    "damaged-data-file": ({**USER, "data": {"source": "data.parquet"}}, {"data.parquet": "this is not a Parquet file"}),
    "braces-in-file-name": ({**USER, "data": {"source": "data{1}.csv"}},
                            {"data{1}.csv": good_data().to_csv(index=False)}),
    "empty-imputed-file": (EXTERNAL, {**external(good_data()), "imp2.csv": ""}),
    "imputed-rows-differ": (EXTERNAL, external(good_data().head(39), good_data().head(39))),
    "imputed-value-changed": (EXTERNAL, external(good_data().assign(y=lambda d: d["y"] + 50))),
    "missing-value-code": (USER, {"data.csv": with_cells("x", {3: ".", 17: "."})}),
    "not-a-number": (USER, {"data.csv": with_cells("x", {6: "12,5"})}),
    "infinite-value": (USER, {"data.csv": with_cells("x", {10: "inf"})}),
    "huge-value": (USER, {"data.csv": with_cells("y", {2: "1e300"})}),
    "text-outcome": (USER, {"data.csv": good_data().assign(y=["low", "high"] * 20).to_csv(index=False)}),
    "all-missing": (USER, {"data.csv": good_data().assign(x=np.nan).to_csv(index=False)}),
    "constant-outcome": (USER, {"data.csv": good_data().assign(y=3.5).to_csv(index=False)}),
    "one-group": (USER, {"data.csv": good_data().assign(g=7).to_csv(index=False)}),
    "missing-group-id": (USER, {"data.csv": with_cells("g", {12: "", 13: "", 30: ""})}),
    "one-row-per-group": (USER, {"data.csv": good_data().assign(g=np.arange(1, 41)).to_csv(index=False)}),
    "unidentifiable-random-effects": (USER, {"data.csv": pd.concat([good_data(0), good_data(1)]).assign(
        g=np.repeat(np.arange(1, 41), 2)).to_csv(index=False)}),
    "single-observation-group": (USER, {"data.csv": pd.concat(
        [good_data(), pd.DataFrame({"g": [9, 10], "x": [0.3, -0.4], "y": [1.2, -0.7]})]).to_csv(index=False)}),
    "several-factors-multilevel": ({**formula("mathach ~ ses + (1 | schid) + (1 | schtype)"),
                                    "imputation": {"method": "multilevel"}}, {}),
    "grouping-column-amputed": ({"data": {"simulate": {"n_classes": 3}},
                                 "model": {"formula": "mathach ~ ses + (1 | schid/classid)"},
                                 "missingness": {"prob": {"classid": 0.1}}}, {}),
    "unbalanced-parenthesis": (formula("mathach ~ ses + (1 + ses | schid"), {}),
    "formula-code": (formula("mathach ~ ses + I(__import__('os').getcwd()) + (1 | schid)"), {}),
    "formula-function": (formula("mathach ~ ses + round(ses) + (1 | schid)"), {}),
    "formula-argument": (formula("mathach ~ poly(ses, degree = 2) + (1 | schid)"), {}),
    "formula-sign": (formula("mathach ~ ses + I(ses > 0) + (1 | schid)"), {}),
    "formula-keyword": (formula("mathach ~ log(in) + (1 | schid)"), {}),
    "formula-unreadable": (formula("mathach ~ 2ses + (1 | schid)"), {}),
    "scenario-dots": ({"scenario": ".."}, {}),
    "study-scenario-dots": ({"study": {"replications": 2, "scenarios": {"..": {}}}}, {}),
}


def troubleshooting_rows() -> dict[str, str]:
    """Row id -> the exact message, from the table of the README's Troubleshooting section."""
    section = README.read_text().partition("\n## Troubleshooting\n")[2].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2].strip("`")
    return rows


ROWS = troubleshooting_rows()
#: The two lines every successful run ends with (tests/test_workflow.py checks them), not a problem's message.
CLOSING = ("mlmi: report: ", "mlmi: console view: ")


def test_every_row_has_a_case_and_every_case_a_row():
    assert list(ROWS) == list(CASES)


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_gets_the_rows_message_before_any_job(row, tmp_path, untouched):
    config, files = CASES[row]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with untouched(*(tmp_path / name for name in files), during=f"the run with the {row} input"):
        done = run_workflow(tmp_path, config)
    lines = done.stderr.splitlines()
    said = [line for line in lines if line.startswith("mlmi:") and not line.startswith(CLOSING)]
    assert said == [ROWS[row]], done.stderr[-3000:]            # said once, as the README has it
    assert "Traceback" not in done.stderr
    if ROWS[row].startswith("mlmi: warning:"):
        assert done.returncode == 0, done.stderr[-3000:]         # a warning: the run goes on to the end
        assert (tmp_path / "results" / "trouble" / "pooled" / "fixed_effects.csv").exists()
        report = (tmp_path / "results" / "trouble" / "report.html").read_text()
        assert ROWS[row].removeprefix("mlmi: warning: ") in html.unescape(report)   # and the report lists it
    else:
        assert done.returncode != 0 and lines[-1] == ROWS[row]   # the last line: nothing follows it
        assert not (tmp_path / "results").exists()
        assert "Building DAG" not in done.stdout + done.stderr   # stopped while reading the workflow: no job
