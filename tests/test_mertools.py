"""merTools' modelFixedEff arithmetic: by hand, and against merTools itself (R)."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool.mertools import MERTOOLS_VERSIONS, SMALL_BETWEEN_MESSAGE, mertools_fixed_effects
from mlmi.pool.rubin import pool

DATA = Path(__file__).parent / "data"
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
COLUMNS = ["estimate", "std_error", "statistic", "df"]


def record(rows):
    """A fit record holding only what the combination reads: (term, estimate, std_error) rows."""
    return FitRecord.from_fit({"dfcom": 100, "dropped": [], "fixed_effects": [
        {"term": t, "estimate": q, "std_error": se, "statistic": q / se} for t, q, se in rows]})


def test_hand_computation_m3(caplog):
    fits = [record([("ses", 1.0, 0.1), ("female", 0.5, 0.2)]),
            record([("ses", 2.0, 0.2), ("female", 0.5, 0.2)]),
            record([("ses", 3.0, 0.3), ("female", 0.5, 0.2)])]
    table = mertools_fixed_effects(fits)
    # Rows sorted by term name, as merTools' group_by sorts them: female before ses.
    assert list(table["term"]) == ["female", "ses"]
    # female: Q = .5, .5, .5; SE = .2, .2, .2; m = 3.
    #   estimate = .5; within_var = mean(SE) = .2; between_var = 0
    #   std_error = .2 + (4/3) * 0 = .2; statistic = .5 / .2 = 2.5
    #   df = 2 * (1 + .2 / 0)^2 = inf (R's x / 0)
    # ses: Q = 1, 2, 3; SE = .1, .2, .3; m = 3.
    #   estimate = 2; within_var = mean(SE) = .2 = 9/45 (SEs averaged, not variances)
    #   between_var = ((1-2)^2 + 0 + (3-2)^2) / 3 = 2/3 (divisor m)
    #   (1 + 1/m) between_var = 4/3 * 2/3 = 8/9 = 40/45
    #   std_error = 9/45 + 40/45 = 49/45 (an SE plus a variance, no square root)
    #   statistic = 2 / (49/45) = 90/49
    #   df = (m - 1) (1 + within_var / ((1 + 1/m) between_var))^2 = 2 (1 + (1/5)/(8/9))^2
    #      = 2 (49/40)^2 = 2401/800
    expected = pd.DataFrame({"estimate": [0.5, 2.0], "std_error": [0.2, 49 / 45],
                             "statistic": [2.5, 90 / 49], "df": [np.inf, 2401 / 800]})
    np.testing.assert_allclose(table[COLUMNS].to_numpy(), expected.to_numpy(), rtol=1e-14)
    # merTools warns once: ((4/3) * 0)^2 < 1e-9 for female.
    assert caplog.text.count(SMALL_BETWEEN_MESSAGE) == 1 and "['female']" in caplog.text
    # Not Rubin's rules: there ubar = (.01 + .04 + .09)/3, b = 2/2 = 1 and the SE is
    # sqrt(.14/3 + 4/3) = sqrt(1.38), larger than merTools' 49/45.
    rubin = pool(fits).set_index("term")
    assert rubin.loc["ses", "std_error"] == pytest.approx(np.sqrt(1.38), rel=1e-14)
    assert rubin.loc["ses", "std_error"] > 49 / 45


@pytest.mark.parametrize("inflated_between, warns", [(3.0e-5, True), (3.2e-5, False)])
def test_warning_threshold_is_on_the_squared_inflated_between_variance(caplog, inflated_between, warns):
    # m = 2 with Q = 0, 2d: between_var = d^2 (divisor m) and (1 + 1/2) d^2 = inflated_between.
    # merTools warns when its square is below 1e-9: (3.0e-5)^2 = 9e-10 warns, (3.2e-5)^2 = 1.024e-9
    # does not, so a between-imputation SD of about .005 already counts as "very small".
    d = np.sqrt(inflated_between / 1.5)
    mertools_fixed_effects([record([("x", 0.0, 1.0)]), record([("x", 2 * d, 1.0)])])
    assert (SMALL_BETWEEN_MESSAGE in caplog.text) == warns


def test_input_errors():
    with pytest.raises(ValueError, match="at least 2 fits"):
        mertools_fixed_effects([record([("x", 1.0, 0.1)])])
    with pytest.raises(ValueError, match=r"terms \['z'\]"):
        mertools_fixed_effects([record([("x", 1.0, 0.1)]), record([("x", 1.2, 0.1), ("z", 0.0, 1.0)])])


def r_has_mertools() -> bool:
    """Whether Rscript exists and loads lme4, merTools, broom.mixed and jsonlite."""
    if shutil.which("Rscript") is None:
        return False
    check = "quit(status = !all(sapply(c('lme4', 'merTools', 'broom.mixed', 'jsonlite'), requireNamespace)))"
    return subprocess.run(["Rscript", "-e", check], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def imputed(tmp_path_factory):
    """m = 3 copies of small.csv, mathach perturbed by seeded N(0, 1) noise, as CSV paths."""
    small = pd.read_csv(DATA / "small.csv")
    rng = np.random.default_rng(20240501)
    folder = tmp_path_factory.mktemp("imputations")
    paths = []
    for k in range(1, 4):
        path = folder / f"imputation_{k}.csv"
        small.assign(mathach=small["mathach"] + rng.normal(0.0, 1.0, len(small))).to_csv(path, index=False)
        paths.append(path)
    return paths


def run_mertools(formula: str, paths: list[Path]) -> dict:
    """merTools::modelFixedEff(lmerModList(formula, data = ...)), each lmer fit's fixed effects
    (as modelFixedEff reads them) and the warnings merTools gave, from mertools_reference.R."""
    done = subprocess.run(["Rscript", str(DATA / "mertools_reference.R"), formula, *map(str, paths)],
                          capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    table = pd.DataFrame(out["model_fixed_eff"]).rename(columns={"std.error": "std_error"})
    table[COLUMNS] = table[COLUMNS].apply(pd.to_numeric)   # jsonlite writes R's Inf as "Inf"
    return {**out, "table": table}


@pytest.fixture(scope="module")
def r_available():
    """Skip, saying what is missing, unless R can run merTools."""
    if not r_has_mertools():
        pytest.skip("Rscript with lme4, merTools, broom.mixed and jsonlite is not available "
                    "(Debian: apt-get install r-cran-mertools r-cran-jsonlite)")


@pytest.fixture(scope="module")
def merTools_run(r_available, imputed):
    return run_mertools(FORMULA, imputed)


def test_arithmetic_matches_mertools_on_r_own_fits(merTools_run):
    # lme4's own per-fit estimates and SEs fed in: this isolates the combination arithmetic,
    # so the only differences left are floating point and JSON's 15-17 digits. Tolerance 1e-6
    # relative on every column.
    fits = [record(zip(fit["term"], fit["estimate"], fit["std_error"])) for fit in merTools_run["per_fit"]]
    ours = mertools_fixed_effects(fits)
    theirs = merTools_run["table"]
    assert merTools_run["versions"]["merTools"] in MERTOOLS_VERSIONS   # a new version: reread its source
    assert list(ours["term"]) == list(theirs["term"])   # same (sorted) row order
    np.testing.assert_allclose(ours[COLUMNS].to_numpy(), theirs[COLUMNS].to_numpy(), rtol=1e-6)


def test_end_to_end_matches_mertools(imputed, merTools_run):
    # Our own fits of the same three data sets, combined as merTools combines lme4's fits.
    # 1e-6 relative is out of reach here because the FITS differ, not the arithmetic (the test
    # above agrees to ~1e-12): on these data our per-fit estimates differ from lme4's by up to
    # ~6e-6 relative and SEs by up to ~4e-5 (our REML criteria are lower by ~3e-7, so the gap
    # is lme4's stopping tolerance). Tolerances, from what those differences allow:
    # - estimate, std_error, statistic: 1e-4 relative (seen: up to 2.2e-5);
    # - df: 2e-3 relative (seen: 3.9e-4). df = 2 (1 + within_var / ((4/3) between_var))^2 goes
    #   with the inverse square of between_var, a variance of estimates only ~.03 apart, so
    #   ~1e-5 absolute differences in the estimates move it by ~1e-3 relative.
    fits = [FitRecord.from_fit(fit_mixed(pd.read_csv(path), FORMULA)) for path in imputed]
    ours = mertools_fixed_effects(fits)
    theirs = merTools_run["table"]
    assert list(ours["term"]) == list(theirs["term"])
    np.testing.assert_allclose(ours[COLUMNS[:3]].to_numpy(), theirs[COLUMNS[:3]].to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(ours["df"].to_numpy(), theirs["df"].to_numpy(), rtol=2e-3)
    assert merTools_run["warnings"] == []


def test_identical_imputations_warn_like_mertools(r_available, caplog):
    # m = 2 copies of one data set: between_var = 0, so merTools warns and its df is Inf.
    formula = "mathach ~ ses + (1 | schid)"
    theirs = run_mertools(formula, [DATA / "small.csv"] * 2)
    fit = FitRecord.from_fit(fit_mixed(pd.read_csv(DATA / "small.csv"), formula))
    ours = mertools_fixed_effects([fit, fit])
    assert theirs["warnings"] == [SMALL_BETWEEN_MESSAGE]
    assert caplog.text.count(SMALL_BETWEEN_MESSAGE) == 1
    assert np.isinf(theirs["table"]["df"]).all() and np.isinf(ours["df"]).all()
    # estimate and std_error are one fit's; 1e-4 relative allows the fit differences (see the test above).
    np.testing.assert_allclose(ours[COLUMNS[:3]].to_numpy(), theirs["table"][COLUMNS[:3]].to_numpy(), rtol=1e-4)
