"""Parity of pooled D1 tests (issue 17, item 1) with mitml 0.4-4 and mice 3.15, on frozen R numbers.

``pool_tests.R`` (beside this file) made ``tests/data/pool_tests_*``: three multiply imputed multilevel data
sets (two of lme4_mice.R's cases, and one with a three-level factor predictor), and, on lme4 fits of every
imputed data set, ``mitml::testModels(method = "D1")`` / ``mitml::testConstraints(method = "D1")`` without and
with ``df.com`` (the fit's residual df, n - npar) and ``mice::D1`` with its default dfcom (the same residual df).
Here the same imputed data sets are fitted by ``mlmi.fit.lmer.fit_mixed`` and tested by ``mlmi.pool.hypotheses``
from the config's shape of a test (``{name, terms}`` or ``{name, constraints}``). statistic, df1, df2, p and riv must agree
within 1e-4 relative (issue 17). No R is needed to run it; ``Rscript pool_tests.R ../data`` remakes the files.

    python -m pytest tests/parity/test_d1_mitml_mice.py     # about 20 s on 2 busy cores: 40 fits
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool.hypotheses import d1_tests

DATA = Path(__file__).parents[1] / "data"
REFERENCE = json.loads((DATA / "pool_tests_reference.json").read_text())
CASES = {case["name"]: case for case in REFERENCE["cases"]}
RTOL = 1e-4


def imputed_data_sets(name: str, m: int) -> list[pd.DataFrame]:
    """The m imputed data sets of a case: the incomplete data with mice's values put into its missing cells."""
    incomplete = pd.read_csv(DATA / f"pool_tests_{name}.csv")
    cells = pd.read_csv(DATA / f"pool_tests_{name}_imputed.csv", dtype=str)
    sets = []
    for k in range(1, m + 1):
        data = incomplete.copy()
        for column, part in cells.groupby("column"):
            values = part[str(k)]
            if pd.api.types.is_numeric_dtype(incomplete[column]):
                values = values.astype(float)
            data.loc[part["row"].astype(int).to_numpy() - 1, column] = values.to_numpy()
        assert not data.isna().any().any()
        sets.append(data)
    return sets


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """One case: R's reference and mlmi's fits of the same imputed data sets."""
    ref = CASES[request.param]
    fits = [FitRecord.from_fit(fit_mixed(data, ref["formula"], reml=ref["reml"], label=str(k)))
            for k, data in enumerate(imputed_data_sets(ref["name"], ref["m"]), start=1)]
    return ref, fits


def config_test(test: dict) -> dict:
    """The test as ``pooling.tests`` writes it (R's JSON turns a one-element list into a string)."""
    if "terms" in test:
        terms = test["terms"]
        return {"name": test["name"], "terms": [terms] if isinstance(terms, str) else terms}
    constraints = test["constraints"]
    return {"name": test["name"], "constraints": [constraints] if isinstance(constraints, str) else constraints}


def check(row: pd.Series, theirs: dict, what: str) -> list[str]:
    """The mismatches of one of mlmi's rows with one of R's results."""
    pairs = {"statistic": "statistic", "df": "df1", "df_residual": "df2", "p_value": "p", "riv": "riv"}
    failures = []
    for ours, name in pairs.items():
        if not np.isclose(row[ours], theirs[name], rtol=RTOL, atol=0):
            failures.append(f"{what} {ours}: mlmi {row[ours]!r}, R {theirs[name]!r} "
                            f"(rel {abs(row[ours] - theirs[name]) / abs(theirs[name]):.2g})")
    return failures


def test_fits_have_r_dfcom(case):
    ref, fits = case
    assert {fit.raw["dfcom"] for fit in fits} == {ref["dfcom"]}
    assert {fit.raw["npar"] for fit in fits} == {ref["npar"]}


def test_d1_matches_mitml_and_mice(case, worst_differences):
    ref, fits = case
    tests = [config_test(test) for test in ref["tests"]]
    large = d1_tests(fits, tests, dfcom=None).set_index("test")        # mitml without df.com
    small = d1_tests(fits, tests, dfcom=ref["dfcom"]).set_index("test")  # mitml with df.com, mice::D1
    failures = []
    for test in ref["tests"]:
        name = test["name"]
        failures += check(large.loc[name], test["mitml"], f"{name} (mitml, no df.com)")
        failures += check(small.loc[name], test["mitml_dfcom"], f"{name} (mitml, df.com = {ref['dfcom']})")
        if "mice" in test:
            assert test["mice"]["dfcom"] == ref["dfcom"]              # mice::D1's default is the residual df
            failures += check(small.loc[name], test["mice"], f"{name} (mice::D1)")
        for column, key in (("statistic", "statistic"), ("df_residual", "df2"), ("riv", "riv"), ("p_value", "p")):
            ours, theirs = small.loc[name, column], test["mitml_dfcom"][key]
            entry = worst_differences.setdefault((f"D1 {ref['name']}", column), [0.0, 0.0, f"{RTOL:g} relative"])
            entry[0] = max(entry[0], abs(ours - theirs))
            entry[1] = max(entry[1], abs(ours - theirs) / abs(theirs))
    assert not failures, "\n".join(failures)
    assert (small["method"] == "D1").all() and (small["m"] == ref["m"]).all()


def test_the_pool_stage_writes_the_configured_tests(tmp_path):
    """The pool stage's pooled/tests.csv on the factor case: a factor named by its name, and constraints, with
    mice::D1's dfcom (the fits' n - npar); the empty table keeps the header."""
    from mlmi.run import io
    from mlmi.run import stages
    from mlmi.run.layout import pooled_tables

    ref = CASES["factor3_100x12_m5"]
    paths = []
    for k, data in enumerate(imputed_data_sets(ref["name"], ref["m"]), start=1):
        paths.append(tmp_path / f"imp_{k}.json")
        made = fit_mixed(data, ref["formula"], reml=ref["reml"], label=str(k))
        io.write_json(FitRecord.from_fit(made).to_json(), paths[-1])
    listwise = fit_mixed(pd.read_csv(DATA / f"pool_tests_{ref['name']}.csv").dropna(), ref["formula"],
                         reml=ref["reml"], label="listwise")
    io.write_json(FitRecord.from_fit(listwise).to_json(), tmp_path / "listwise.json")
    tests = [config_test(test) for test in ref["tests"]]
    for run, asked in (("with", tests), ("without", [])):
        outputs = pooled_tables(tmp_path / run)
        stages.pool_fits(paths, tmp_path / "listwise.json", outputs, tests=asked)
        written = pd.read_csv(outputs["tests"])
        assert list(written.columns) == ["test", "hypothesis", "statistic", "df", "df_residual", "p_value", "riv",
                                         "dfcom", "method", "m"]
        assert len(written) == len(asked)
    by_name = pd.read_csv(pooled_tables(tmp_path / "with")["tests"]).set_index("test")
    assert list(by_name["hypothesis"][:3]) == ["fb = 0, fc = 0", "fb = 0, fc = 0, x1 = 0", "fb - fc = 0"]
    assert (by_name["dfcom"] == ref["dfcom"]).all()
    failures = []
    for test in ref["tests"]:
        failures += check(by_name.loc[test["name"]], test["mitml_dfcom"], test["name"])
    assert not failures, "\n".join(failures)
