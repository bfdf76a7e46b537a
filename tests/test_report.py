"""The report page from a tiny fixture of the pooled tables of design §4."""
import base64
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlmi.report import number, write_report

FORMULA = "y ~ x + z + (1 + x | g)"
HEADINGS = ["Warnings", "Data and missingness", "Fixed effects", "Per-imputation estimates", "Random effects",
            "Conditional modes", "Model information"]
TRUTH = {"fixed_effects": {"(Intercept)": 14.05, "x": -2.8, "z": 3.05},
         "random_effects": {"group": "g", "sd": {"(Intercept)": 1.54, "x": 0.58}, "cor": {"(Intercept).x": -0.63}},
         "sigma": 5.98}


def write_fixture(root, truth=True):
    """Pooled CSVs for 2 imputations and 3 terms; imputation 2 did not converge; x has riv = 0."""
    pooled = root / "pooled"
    pooled.mkdir()
    terms = ["(Intercept)", "x", "z"]
    pd.DataFrame({
        "term": terms, "estimate": [13.96458, -2.501642, 3.218819], "std_error": [0.1735254, 0.2013395, 0.3612399],
        "statistic": [80.4757, -12.42499, 8.910476], "df": [123.4, 7176.0, 58.71],
        "p_value": [1.2e-90, 3.4e-33, 2.2e-12],
        "conf_low": [13.62, -2.896, 2.496], "conf_high": [14.31, -2.107, 3.942], "ubar": [0.0290, 0.0405, 0.1290],
        "b": [0.0014, 0.0, 0.0002], "t": [0.0301, 0.0405, 0.1305], "dfcom": [7176.0] * 3,
        "riv": [0.0724, 0.0, 0.0023], "lambda": [0.0675, 0.0, 0.0023], "fmi": [0.0826, 0.0003, 0.0357], "m": [2] * 3,
    }).to_csv(pooled / "fixed_effects.csv", index=False)
    pd.DataFrame({
        "imputation": [1, 1, 1, 2, 2, 2], "term": terms * 2,
        "estimate": [13.96396, -2.501642, 3.1769, 13.965839, -2.501642, 3.260738],
        "std_error": [0.1736, 0.2012, 0.3606, 0.1733, 0.2014, 0.3591],
        "statistic": [80.4, -12.4, 8.81, 80.6, -12.4, 9.08],
    }).to_csv(pooled / "fixed_effects_by_imputation.csv", index=False)
    pd.DataFrame({
        "term": terms, "estimate": [14.042816, -2.70137, 2.992329], "std_error": [0.18, 0.21, 0.37],
        "statistic": [78.0, -12.9, 8.1], "conf_low": [13.69, -3.11, 2.27], "conf_high": [14.40, -2.29, 3.72],
    }).to_csv(pooled / "listwise_fixed_effects.csv", index=False)
    pd.DataFrame({
        "group": ["g", "g", "g", "Residual"],
        "term": ["sd__(Intercept)", "sd__x", "cor__(Intercept).x", "sd__Observation"],
        "estimate": [1.5252886, 0.6712887, -0.493787, 5.9850808],
        "between_sd": [0.006762784, 0.0269886, 0.0402282, 0.0048753],
    }).to_csv(pooled / "random_effects.csv", index=False)
    pd.DataFrame({
        "grp": ["g", "g", "g", "Residual"], "var1": ["(Intercept)", "x", "(Intercept)", None],
        "var2": [None, None, "x", None],
        "vcov": [2.3265, 0.4506, -0.5056, 35.8211], "sdcor": [1.5252886, 0.6712887, -0.493787, 5.9850808],
    }).to_csv(pooled / "varcorr.csv", index=False)
    levels = np.repeat([101, 102, 103, 104, 105, 106, 107], 2)
    pd.DataFrame({
        "group": "g", "level": levels, "term": ["(Intercept)", "x"] * 7,
        "estimate": np.linspace(-0.5, 0.5, 14), "std_error": np.linspace(0.1, 0.2, 14),
    }).to_csv(pooled / "ranef.csv", index=False)
    pd.DataFrame({
        "imputation": ["1", "2", "listwise"], "n_obs": [40, 40, 33], "n_levels": [1, 1, 1], "n_groups": [7, 7, 7],
        "aic": [46359.69, 46372.89, 39001.2], "bic": [46421.6, 46434.8, 39062.1],
        "loglik": [-23170.8, -23177.4, -19491.6],
        "reml_criterion": [46341.7, 46354.9, 38983.2], "sigma": [5.980225, 5.988159, 6.00409],
        "converged": [True, False, True], "singular": [False, False, False],
        "warnings": ["", "Model failed to converge with max|grad| = 0.0024", ""],
    }).to_csv(pooled / "model_info.csv", index=False)
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "z": rng.normal(size=40),
                          "g": np.repeat(np.arange(101, 108), 6)[:40], "extra": rng.normal(size=40)})
    frame.loc[[0, 1, 2], "x"] = np.nan          # 7 model rows incomplete: 0, 1, 2, 5, 9, 10 and 11
    frame.loc[[2, 5, 9], "z"] = np.nan
    frame.loc[[10, 11], "y"] = np.nan
    frame.loc[[3, 4], "extra"] = np.nan         # not a model variable: listwise keeps these rows
    frame.to_parquet(data / "missing.parquet", index=False)
    if truth:
        (data / "truth.json").write_text(json.dumps(TRUTH))
    return {"pooled_dir": pooled, "missing_path": data / "missing.parquet",
            "truth_path": data / "truth.json" if truth else None}


@pytest.fixture
def page(tmp_path):
    paths = write_fixture(tmp_path)
    write_report(tmp_path / "report.html", formula=FORMULA, scenario="tiny", warnings=["imputation: kernel note"],
                 **paths)
    return (tmp_path / "report.html").read_text(encoding="utf-8")


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG")


def test_sections_in_order(page):
    positions = [page.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions)
    assert "<h1>mlmi report: tiny</h1>" in page
    assert "<code>y ~ x + z + (1 + x | g)</code>" in page


def test_terms_and_pooled_estimates_formatted(page):
    for term in ["(Intercept)", "x", "z"]:
        assert f"<td>{term}</td>" in page
    for shown in ["13.96", "-2.502", "3.219", "0.1735", "0.2013", "0.3612", "123.4", "7176", "1.2e-90"]:
        assert f"<td>{shown}</td>" in page
    assert "<td>46359.7</td>" in page                              # AIC keeps a decimal
    assert re.search(r"<td>1</td>\s*<td>13.96</td>\s*<td>-2.502</td>\s*<td>3.177</td>", page)   # by imputation


def test_truth_column_when_truth_given(page):
    assert "<th>truth</th>" in page
    assert re.search(r"<td>\(Intercept\)</td>\s*<td>14.05</td>", page)              # fixed effects
    assert re.search(r"<td>sd__Observation</td>\s*<td>5.98</td>", page)            # sigma
    assert re.search(r"<td>cor__\(Intercept\).x</td>\s*<td>-0.63</td>", page)


def test_no_truth_anywhere_without_truth(tmp_path):
    paths = write_fixture(tmp_path, truth=False)
    write_report(tmp_path / "report.html", formula=FORMULA, scenario="tiny", **paths)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "truth" not in page.lower() and "true value" not in page
    assert "14.05" not in page


def test_warnings_listed(page):
    warnings = html.unescape(page[page.index("<h2>Warnings</h2>"):page.index("<h2>Data and missingness</h2>")])
    assert "imputation: kernel note" in warnings
    assert "fit 2: did not converge; Model failed to converge with max|grad| = 0.0024" in warnings
    assert "term 'x': between-imputation variance is negligible next to the within variance" in warnings
    assert "'(Intercept)': between" not in warnings and "fit 1" not in warnings
    assert page.count('<tr class="flagged">') == 1


def test_missingness_counts(page):
    assert "Rows: 40" in page
    assert re.search(r"Rows after listwise deletion \(no missing value in y, x, z, g\): 33<", page)
    assert "Patterns of missingness in the data (the complete pattern included): 6" in page


def test_explicit_model_vars_and_escaping(tmp_path):
    paths = write_fixture(tmp_path)
    write_report(tmp_path / "r.html", formula=FORMULA, scenario="a<b", model_vars=["y"], **paths)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "mlmi report: a&lt;b" in page and "a<b" not in page
    assert re.search(r"no missing value in y\): 38<", page)


@pytest.mark.parametrize("value, shown", [(13.96458, "13.96"), (-2.501642, "-2.502"), (46359.69, "46359.7"),
                                          (7176.0, "7176"), (2.178458e9, "2.178e+09"), (0.000123456, "0.0001235"),
                                          (0.0, "0")])
def test_number_format(value, shown):
    assert number(value) == shown


def test_mertools_legacy_table_is_labelled_not_rubin(tmp_path):
    paths = write_fixture(tmp_path, truth=False)
    pd.DataFrame({"term": ["x"], "estimate": [1.0], "std_error": [0.123], "statistic": [8.1], "df": [40.0]}).to_csv(
        tmp_path / "pooled" / "mertools_fixed_effects.csv", index=False)
    write_report(tmp_path / "report.html", formula=FORMULA, scenario="tiny", **paths)
    page = html.unescape((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert "merTools legacy table (not Rubin's rules)" in page and "0.123" in page
    assert "averages the standard errors instead of the variances" in page
