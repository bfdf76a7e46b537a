"""``mlmi summary``: the pooled model as console text, its numbers equal to the CSVs' (formatted)."""
import subprocess
import sys

import pandas as pd
import pytest

from mlmi.cli import main
from mlmi.report.console import P_FLOOR, summary
from test_report import FORMULA, write_fixture


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_fixture(root)
    return root


@pytest.fixture(scope="module")
def text(results):
    return summary(results)


def block(text: str, title: str) -> list[str]:
    """The lines of one titled block, header row included, up to the next blank or --- line."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next(i for i in range(start, len(lines)) if lines[i] in ("", "---"))
    return lines[start:end]


def printed_equals(shown: str, value: float) -> bool:
    """Whether a printed number is ``value`` rounded to the decimals it shows."""
    places = len(shown.split(".")[1]) if "." in shown else 0
    return abs(float(shown) - value) <= 0.5 * 10 ** -places + 1e-12


def test_header_names_method_imputations_and_formula(text):
    lines = text.splitlines()
    assert lines[0] == ("Linear mixed model fit by REML on 2 imputed data sets, pooled by Rubin's rules "
                        "(Barnard-Rubin df)")
    assert lines[1] == f"Formula: {FORMULA}"


def test_fixed_effects_equal_the_pooled_csv(text, results):
    fixed = pd.read_csv(results / "pooled" / "fixed_effects.csv")
    rows = block(text, "Fixed effects:")
    assert rows[0].split() == ["Estimate", "Std.", "Error", "t", "value", "df", "Pr(>|t|)"]
    assert len(rows) == len(fixed) + 1
    for line, row in zip(rows[1:], fixed.itertuples(index=False)):
        term, estimate, std_error, statistic, df, p = line.split(maxsplit=5)
        assert term == row.term
        for shown, value in ((estimate, row.estimate), (std_error, row.std_error), (statistic, row.statistic),
                             (df, row.df)):
            assert printed_equals(shown, value), (term, shown, value)
        assert p == "< 2e-16" if row.p_value < P_FLOOR else float(p) == pytest.approx(row.p_value, rel=5e-3)


def test_fixed_effects_are_aligned(text):
    rows = block(text, "Fixed effects:")
    assert len({len(line) for line in rows}) == 1                          # numbers right-aligned to one edge
    assert len({line.index(".", 12) for line in rows[1:]}) == 1             # estimates' decimal points line up


def test_error_terms_equal_varcorr(text, results):
    varcorr = pd.read_csv(results / "pooled" / "varcorr.csv")
    rows = block(text, "Error terms (mean over imputations):")
    assert rows[0].split() == ["Groups", "Name", "Std.Dev.", "Corr"]
    assert rows[1].split()[:2] == ["g", "(Intercept)"] and printed_equals(rows[1].split()[2], varcorr["sdcor"][0])
    name, sd, cor = rows[2].split()
    assert name == "x" and printed_equals(sd, varcorr["sdcor"][1]) and printed_equals(cor, varcorr["sdcor"][2])
    assert rows[3].split()[0] == "Residual" and printed_equals(rows[3].split()[1], varcorr["sdcor"][3])


def test_observations_groups_and_mean_aic(text, results):
    model_info = pd.read_csv(results / "pooled" / "model_info.csv", dtype={"imputation": str})
    aic = model_info.loc[model_info["imputation"] != "listwise", "aic"].mean()
    assert "number of obs: 40 (33 after listwise deletion), groups: g, 7" in text.splitlines()
    assert f"AIC = {aic:.1f} (mean over 2 imputations)" in text.splitlines()


def test_warnings_listed_after_the_model(text):
    warnings = text.split("\nWarnings:\n")[1]
    assert "fit 2: Model failed to converge" in warnings and "term 'x': between-imputation variance" in warnings
    assert "did not converge" not in warnings        # the fit's own words once, not the flag's beside them


def test_a_fits_flags_speak_only_when_it_recorded_no_warning():
    from mlmi.report.results import fit_warnings

    info = pd.DataFrame({"imputation": ["1", "2"], "converged": [True, False], "singular": [True, False],
                         "warnings": ["boundary (singular) fit: see help('isSingular')", ""]})
    fixed = pd.DataFrame({"term": ["x"], "riv": [0.5]})
    assert fit_warnings(info, fixed) == ["fit 1: boundary (singular) fit: see help('isSingular')",
                                         "fit 2: did not converge"]


def test_command_prints_the_summary(results, capsys):
    assert main(["summary", str(results)]) == 0
    assert capsys.readouterr().out == summary(results) + "\n"


@pytest.mark.parametrize("folder, says", [("nowhere", "is not a folder"),
                                          (".", "is not an mlmi results folder: pooled/fixed_effects.csv is missing")])
def test_not_a_results_folder_is_one_line(tmp_path, capsys, folder, says):
    assert main(["summary", str(tmp_path / folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mlmi: ") and says in error and error.count("\n") == 1


def test_python_dash_m_mlmi_runs_the_command(results):
    done = subprocess.run([sys.executable, "-m", "mlmi", "summary", str(results)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == summary(results) + "\n"


def test_imputation_models_and_their_warnings_are_listed(results, tmp_path):
    import shutil

    from mlmi.fit.formula import parse_formula
    from mlmi.impute.models import imputation_models

    folder = tmp_path / "run"
    shutil.copytree(results, folder)
    assert "Imputation:" not in summary(folder)                     # imputations made elsewhere: no table
    missing = pd.DataFrame({"g": [1, 1, 2, 2, 3, 3], "x": [0.1, None, 0.3, 0.2, None, 0.5],
                            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    imputation = {"method": "miceforest", "exclude": ["g"], "level2": [], "cluster_means": {},
                  "cluster_predictors": True, "bootstrap": False}
    models = imputation_models(imputation, parse_formula("y ~ x + (1 + x | g)"), missing)
    (folder / "imputations").mkdir(exist_ok=True)
    models.to_csv(folder / "imputations" / "models.csv", index=False)
    shown = summary(folder)
    assert block(shown, "Imputation:") == ["  x (level 1): miceforest, single-level, from y and the g means of x and y"]
    assert "  x has a random slope in model.formula but miceforest imputes it without one: set imputation.method: " \
           "multilevel" in shown.split("Warnings:")[1].splitlines()


def test_pooled_tests_are_listed_after_the_fixed_effects(text, results):
    lines = block(text, "Pooled Wald tests (D1, Reiter's df2 from dfcom = n - npar):")
    assert lines[0].split() == ["Hypothesis", "F", "value", "df1", "df2", "P(>F)", "RIV"]
    assert lines[1].split()[:5] == ["x_and_z", "x", "=", "0,", "z"]
    assert "< 2e-16" in lines[1] and "0.414" in lines[2]
    assert text.index("Fixed effects:") < text.index("Pooled Wald tests") < text.index("Error terms")


def test_no_tests_no_tests_block(tmp_path):
    write_fixture(tmp_path)
    tests = pd.read_csv(tmp_path / "pooled" / "tests.csv")
    tests.iloc[:0].to_csv(tmp_path / "pooled" / "tests.csv", index=False)
    assert "Pooled Wald tests" not in summary(tmp_path)
    (tmp_path / "pooled" / "tests.csv").unlink()                  # a run from before the tests existed
    assert "Pooled Wald tests" not in summary(tmp_path)


def test_model_comparisons_follow_the_wald_tests(text):
    lines = block(text, "Pooled likelihood-ratio comparisons with nested models (D2, D3):")
    assert lines[0].split() == ["Method", "Nested", "model", "F", "value", "df1", "df2", "P(>F)", "RIV"]
    assert lines[1].split()[:3] == ["no_slope", "D2", "y"] and "0.0458" in lines[1]
    assert lines[2].split()[:2] == ["no_slope", "D3"] and "0.0381" in lines[2]
    assert text.index("Pooled Wald tests") < text.index("Pooled likelihood-ratio") < text.index("Error terms")
def test_variance_components_with_intervals_follow_the_error_terms(text, results):
    lines = block(text, "Variance components (Rubin's rules on log SD / Fisher z, back-transformed):")
    vc = pd.read_csv(results / "pooled" / "variance_components.csv")
    assert lines[0].split() == ["Groups", "Term", "Estimate", "95%", "CI"]
    for line, row in zip(lines[1:], vc.itertuples(index=False)):
        group, term, estimate, low, high = line.replace("[", "").replace(",", "").replace("]", "").split()
        assert (group, term) == (row.group, row.term)
        assert printed_equals(estimate, row.estimate) and printed_equals(low, row.conf_low)
        assert printed_equals(high, row.conf_high)
    assert text.index("Error terms") < text.index("Variance components (Rubin")


def test_pooled_r2_line(text):
    line = next(line for line in text.splitlines() if line.startswith("R2 (mean over 2 imputations)"))
    assert "marginal 0.1923, conditional 0.2575" in line and "SB 0.1959" in line


def test_no_r2_or_intervals_in_an_older_run(tmp_path):
    write_fixture(tmp_path)
    for name in ("r2.csv", "variance_components.csv"):
        (tmp_path / "pooled" / name).unlink()
    text = summary(tmp_path)
    assert "Variance components" not in text and "R2 (" not in text


def test_r2_line_of_several_factors_and_of_a_generalized_model():
    """Several grouping factors: Nakagawa & Schielzeth's R² alone (RB1, RB2 and SB need one factor's null model);
    a GLMM's fits have no R², and the summary prints no R² line."""
    from mlmi.report.console import r2_line

    several = pd.DataFrame({"imputation": ["1", "pooled"], "r2_marginal": [0.2, 0.2], "r2_conditional": [0.3, 0.3],
                            "r2_rb1": [float("nan")] * 2, "r2_rb2": [float("nan")] * 2, "r2_sb": [float("nan")] * 2})
    assert r2_line(several) == ["R2 (mean over 1 imputations): marginal 0.2000, conditional 0.3000 (Nakagawa & "
                                "Schielzeth); RB1, RB2 and SB need a model of one grouping factor"]
    assert r2_line(several.assign(r2_marginal=float("nan"), r2_conditional=float("nan"))) == []
