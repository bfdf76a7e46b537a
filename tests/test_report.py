"""The report page from a tiny fixture of a results folder (design §4): pooled tables, fits, data, imputations."""
import base64
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.record import FitRecord
from mlmi.report.run_report import FIGURES, gather_warnings, key_facts, logged_warnings, number, p_text, write_report

FORMULA = "y ~ x + z + (1 + x | g)"
HEADINGS = ["Warnings", "Fixed effects", "Tests and model comparison", "Data and missingness", "Imputation models", "Imputation diagnostics",
            "Random effects", "Model information", "Provenance"]
#: The multilevel sampler's parameters in the fixture's traces.
PARAMETERS = ["x", "sd__x", "sd__Observation"]
TRUTH = {"fixed_effects": {"(Intercept)": 14.05, "x": -2.8, "z": 3.05},
         "random_effects": {"group": "g", "sd": {"(Intercept)": 1.54, "x": 0.58}, "cor": {"(Intercept).x": -0.63}},
         "sigma": 5.98}
PROVENANCE = {"config": {"scenario": "tiny", "seed": 7, "model": {"formula": FORMULA}},
              "seeds": {"master": 7, "impute": {"1": 1111, "2": 2222}},
              "versions": {"python": "3.11.7", "platform": "Linux-x", "packages": {"numpy": "2.4.6"}},
              "inputs": {"config/config.yaml": "ab" * 32}, "run_seconds": 12.345}


def fit_record(sd_intercept: float, sd_x: float, cor: float, sigma: float) -> FitRecord:
    """The parts of a fit record (fits/*.json) the report and the console summary read."""
    return FitRecord.from_fit({"formula": FORMULA, "reml": True, "n_groups": {"g": 7}, "sigma": sigma, "factors": {},
                               "random_effects": {"group": "g", "terms": ["(Intercept)", "x"],
                                                  "sd": {"(Intercept)": sd_intercept, "x": sd_x},
                                                  "cor": {"(Intercept).x": cor}}})


def write_pooled(pooled):
    """Pooled CSVs for 2 imputations and 3 terms; imputation 2 did not converge; x has riv = 0."""
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
    pd.DataFrame({
        "test": ["x_and_z", "equal", "no_slope", "no_slope"],
        "hypothesis": ["x = 0, z = 0", "x - z = 0", "y ~ x + z + (1 | g)", "y ~ x + z + (1 | g)"],
        "statistic": [93.52, 0.8311, 3.217, 3.305], "df": [2, 1, 2, 2], "df_residual": [41.27, 4.0, 73.27, 300.2],
        "p_value": [3.1e-17, 0.4137, 0.04582, 0.03806], "riv": [0.0312, 0.0027, 0.2342, 0.0986],
        "dfcom": [34.0, 34.0, None, None], "method": ["D1", "D1", "D2", "D3"], "m": [2, 2, 2, 2],
    }).to_csv(pooled / "tests.csv", index=False)
    pd.DataFrame({
        "imputation": ["1", "2", "pooled"], "r2_marginal": [0.1912, 0.1934, 0.1923],
        "r2_conditional": [0.2561, 0.2589, 0.2575], "r2_rb1": [0.1101, 0.1123, 0.1112],
        "r2_rb2": [0.6411, 0.6497, 0.6454], "r2_sb": [0.1949, 0.1969, 0.1959],
    }).to_csv(pooled / "r2.csv", index=False)
    pd.DataFrame({
        "group": ["g", "g", "g", "Residual"],
        "term": ["sd__(Intercept)", "sd__x", "cor__(Intercept).x", "sd__Observation"],
        "estimate": [1.5252737, 0.6707452, -0.4945112, 5.9850758], "std_error": [0.11, 0.25, 0.21, 0.05],
        "conf_low": [1.3061, 0.3215, -0.8102, 5.8885], "conf_high": [1.7812, 1.3993, 0.0152, 6.0832],
        "scale": ["log", "log", "atanh", "log"], "scaled_estimate": [0.42218, -0.39937, -0.54207, 1.78927],
        "scaled_std_error": [0.0792, 0.3751, 0.2856, 0.0083], "df": [2.1e5, 1.9e4, 1.2e3, 3.3e5],
        "ubar": [0.00627, 0.1406, 0.0815, 6.9e-5], "b": [2.3e-5, 0.00072, 0.0013, 3.2e-7],
        "t": [0.00631, 0.1417, 0.0835, 6.9e-5], "riv": [0.0055, 0.0077, 0.0240, 0.0069],
        "lambda": [0.0055, 0.0076, 0.0234, 0.0069], "fmi": [0.0055, 0.0076, 0.0234, 0.0069], "m": [2] * 4,
    }).to_csv(pooled / "variance_components.csv", index=False)


def write_data(root, truth: bool) -> pd.DataFrame:
    """data/missing.parquet (and truth.json): 40 rows, 7 of them incomplete in the model's columns."""
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40),
                          "z": rng.integers(0, 2, size=40).astype(float),
                          "g": np.repeat(np.arange(101, 108), 6)[:40], "extra": rng.normal(size=40)})
    frame.loc[[0, 1, 2], "x"] = np.nan          # 7 model rows incomplete: 0, 1, 2, 5, 9, 10 and 11
    frame.loc[[2, 5, 9], "z"] = np.nan
    frame.loc[[10, 11], "y"] = np.nan
    frame.loc[[3, 4], "extra"] = np.nan         # not a model variable: listwise keeps these rows
    frame.to_parquet(data / "missing.parquet", index=False)
    if truth:
        (data / "truth.json").write_text(json.dumps(TRUTH))
    return frame


def write_imputations(root, missing: pd.DataFrame) -> None:
    """imputations/imp_<k>.parquet (every gap filled; z with 0/1) and chains_<k>.csv for k = 1, 2."""
    folder = root / "imputations"
    folder.mkdir()
    for k in (1, 2):
        rng = np.random.default_rng(k)
        filled = missing.copy()
        for column in ("y", "x", "extra"):
            gaps = filled[column].isna()
            filled.loc[gaps, column] = rng.normal(size=gaps.sum())
        filled.loc[filled["z"].isna(), "z"] = [0.0, 1.0, float(k % 2)]
        filled.to_parquet(folder / f"imp_{k}.parquet", index=False)
        pd.DataFrame([{"iteration": i, "variable": v, "mean": 0.1 * i + k, "sd": 1.0 + 0.01 * i}
                      for i in range(3) for v in ("y", "x", "z", "extra")]).to_csv(folder / f"chains_{k}.csv",
                                                                                  index=False)


def write_models_and_traces(root, mixing: bool = True) -> tuple:
    """imputations/models.csv as mlmi.impute.models writes it, and trace_<k>.csv of two chains of the
    multilevel sampler: independent draws around the same values, or (``mixing`` false) chains that disagree."""
    folder = root / "imputations"
    pd.DataFrame({"variable": ["x", "z"], "level": [1, 1], "in_model": [True, True],
                  "imputed_by": ["miceforest, single-level, from y, z and extra", "miceforest, single-level"],
                  "carries_model": [False, True],
                  "warning": ["x has a random slope in model.formula but miceforest imputes it without one: set "
                              "imputation.method: multilevel", ""]}).to_csv(folder / "models.csv", index=False)
    traces = []
    for k in (1, 2):
        rng = np.random.default_rng(10 + k)
        shift = 0.0 if mixing else 5.0 * k
        traces.append(folder / f"trace_{k}.csv")
        pd.DataFrame([{"iteration": i, "parameter": p, "value": rng.normal(1.0 + shift)}
                      for i in range(1, 201) for p in PARAMETERS]).to_csv(traces[-1], index=False)
    return folder / "models.csv", traces


def write_fits(root) -> None:
    """fits/imp_1.json, imp_2.json and listwise.json."""
    fits = root / "fits"
    fits.mkdir()
    for name, record in {"imp_1": fit_record(1.52, 0.65, -0.46, 5.98), "imp_2": fit_record(1.53, 0.69, -0.52, 5.99),
                         "listwise": fit_record(1.6, 0.4, -0.9, 6.0)}.items():
        (fits / f"{name}.json").write_text(json.dumps(record.to_json()))


def write_fixture(root, truth=True, chains=True) -> dict:
    """A tiny results folder; returns write_report's path arguments for it."""
    write_pooled(root / "pooled")
    missing = write_data(root, truth)
    write_imputations(root, missing)
    write_fits(root)
    return {"pooled_dir": root / "pooled", "missing_path": root / "data" / "missing.parquet",
            "truth_path": root / "data" / "truth.json" if truth else None,
            "fit_paths": [root / "fits" / f"imp_{k}.json" for k in (1, 2)],
            "listwise_fit_path": root / "fits" / "listwise.json",
            "imputed_paths": [root / "imputations" / f"imp_{k}.parquet" for k in (1, 2)],
            "chain_paths": [root / "imputations" / f"chains_{k}.csv" for k in (1, 2)] if chains else []}


def write_page(root, **options) -> str:
    """Write the fixture's report (mlmi's own imputations by the multilevel sampler when chains are given)
    and return the page's text."""
    chains = options.get("chains", True)
    paths = write_fixture(root, truth=options.pop("truth", True), chains=options.pop("chains", True))
    models, traces = write_models_and_traces(root, options.pop("mixing", True)) if chains else (None, [])
    options = {"formula": FORMULA, "scenario": "tiny", "categorical": ["z"], "models_path": models,
               "trace_paths": traces, **options}
    write_report(root / "report.html", **paths, **options)
    return (root / "report.html").read_text(encoding="utf-8")



@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A simulated run: truth, chains, a job log with a warning, provenance; figures written as files too."""
    root = tmp_path_factory.mktemp("full")
    log = root / "impute.log"
    log.write_text("2026-11-24 10:14:42,231 INFO mlmi.run.stages: imputation 1: seed 3\n"
                   "2026-11-24 10:14:42,232 WARNING py.warnings: kernel note\n")
    figures = {name: root / "figures" / f"{name}.png" for name in FIGURES}
    return {"page": write_page(root, logs={"impute/1": log}, provenance=PROVENANCE, figure_paths=figures),
            "figures": figures}


@pytest.fixture(scope="module")
def page(full):
    return full["page"]


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A user's data and imputations made elsewhere: no truth, no chains, no provenance; merTools' table asked for.

    The scenario name needs escaping, and only y counts as a model variable.
    """
    root = tmp_path_factory.mktemp("bare")
    paths = write_fixture(root, truth=False, chains=False)
    pd.read_csv(root / "pooled" / "tests.csv").iloc[:0].to_csv(root / "pooled" / "tests.csv", index=False)  # none asked
    pd.DataFrame({"term": ["x"], "estimate": [1.0], "std_error": [0.123], "statistic": [8.1], "df": [40.0]}).to_csv(
        root / "pooled" / "mertools_fixed_effects.csv", index=False)
    write_report(root / "report.html", formula=FORMULA, scenario="a<b", model_vars=["y"], **paths)
    return (root / "report.html").read_text(encoding="utf-8")


def without_images(page: str) -> str:
    """The page without its images' data, so a word search cannot hit base64 by chance."""
    return re.sub(r'src="data:[^"]*"', 'src=""', page)


def images(page: str) -> list[tuple[str, bytes]]:
    """(kind, decoded bytes) of every <img> in the page."""
    return [(kind, base64.b64decode(data))
            for kind, data in re.findall(r'<img alt="[^"]+" src="data:image/(png|svg\+xml);base64,([A-Za-z0-9+/=]+)"',
                                         page)]


def section_text(page: str, heading: str) -> str:
    """The unescaped markup of one section, from its heading to the next one."""
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return html.unescape(page[start:end if end > 0 else len(page)])


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert page.count("<img ") == len(FIGURES) + 1 == len(images(page))     # and the sampler's traces
    for kind, content in images(page):
        assert content.startswith(b"\x89PNG") if kind == "png" else content.lstrip().startswith(b"<?xml")


def test_sections_in_order_each_with_a_one_line_explanation(page):
    positions = [page.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions)
    # the answer first: key facts, warnings, then the pooled table before any diagnostic
    assert page.index('<ul class="facts">') < positions[0] < page.index("<th>95% CI low</th>") < positions[2]
    assert page.count("<h2>") == len(HEADINGS)
    for heading in HEADINGS:
        assert re.search(f'<h2>{re.escape(heading)}</h2>\n<p class="lead">[^<]+</p>', page), heading
        assert f'href="#{heading.lower().replace(" ", "-")}"' in page
    assert "<h1>mlmi report: tiny</h1>" in page
    assert "<code>y ~ x + z + (1 + x | g)</code>" in page


def test_terms_and_pooled_estimates_formatted(page):
    for term in ["(Intercept)", "x", "z"]:
        assert f"<td>{term}</td>" in page
    for shown in ["13.96", "-2.502", "3.219", "0.1735", "0.2013", "0.3612", "123.4", "7176", "2.2e-12"]:
        assert f"<td>{shown}</td>" in page
    pooled = section_text(page, "Fixed effects")
    assert pooled.count("<td>< 2e-16</td>") == 2 and "1.2e-90" not in pooled and "3.4e-33" not in pooled
    assert "<td>46359.7</td>" in page                              # AIC keeps a decimal
    assert re.search(r"<td>1</td>\s*<td>13.96</td>\s*<td>-2.502</td>\s*<td>3.177</td>", page)   # by imputation


def test_truth_column_when_truth_given(page):
    assert "<th>truth</th>" in page
    assert re.search(r"<td>\(Intercept\)</td>\s*<td>14.05</td>", page)              # fixed effects
    assert re.search(r"<td>sd__Observation</td>\s*<td>5.98</td>", page)            # sigma
    assert re.search(r"<td>cor__\(Intercept\).x</td>\s*<td>-0.63</td>", page)


def test_no_truth_anywhere_without_truth(bare):
    text = without_images(bare)
    assert "truth" not in text.lower() and "true value" not in text
    assert "14.05" not in text


def test_warnings_first_gathered_from_results_and_logs(page):
    assert page.index("<h2>Warnings</h2>") < page.index("<h2>Data and missingness</h2>")
    warnings = section_text(page, "Warnings")
    assert "impute/1: kernel note" in warnings and "seed 3" not in warnings
    assert "fit 2: Model failed to converge with max|grad| = 0.0024" in warnings
    assert "term 'x': between-imputation variance is negligible next to the within variance" in warnings
    assert "'(Intercept)': between" not in warnings and "fit 1" not in warnings
    # the imputation models' warning is read from their record, imputations/models.csv, not from a log
    assert "imputation_models: x has a random slope in model.formula but miceforest imputes it" in warnings
    assert '<li><b>4</b> warnings</li>' in page and '<li><b>1</b> fit not converged</li>' in page


def test_logged_lines_that_repeat_a_result_warning_are_listed_once(tmp_path):
    log = tmp_path / "fit.log"
    log.write_text("2026-11-24 10:14:49,989 WARNING mlmi.run.stages: 2: Model failed to converge with max|grad| = 0.0024\n"
                   "2026-11-24 10:14:50,000 ERROR mlmi.run.stages: something else broke\n")
    model_info = pd.read_csv(write_fixture(tmp_path)["pooled_dir"] / "model_info.csv")
    fixed = pd.read_csv(tmp_path / "pooled" / "fixed_effects.csv")
    found = gather_warnings(logged_warnings({"fit/2": log}), model_info, fixed)
    assert sum("max|grad| = 0.0024" in line for line in found) == 1
    assert found[-1] == "fit/2: something else broke"


def test_a_message_logged_by_several_jobs_is_listed_once_with_a_count(tmp_path):
    logs = {}
    for k in range(1, 7):
        logs[f"fit/{k}"] = tmp_path / f"fit{k}.log"
        logs[f"fit/{k}"].write_text("2026-11-24 10:14:49,989 WARNING mlmi.run.stages: "
                                    f"{k}: statsmodels MixedLM: Random effects covariance is singular\n" * (k % 2 + 1))
    logs["fit/7"] = tmp_path / "never_written.log"
    model_info = pd.read_csv(write_fixture(tmp_path)["pooled_dir"] / "model_info.csv")
    fixed = pd.read_csv(tmp_path / "pooled" / "fixed_effects.csv")
    found = gather_warnings(logged_warnings(logs), model_info, fixed)
    assert [line for line in found if "covariance" in line] == [
        "fit/1, fit/2, fit/3, fit/4 and 2 other jobs: statsmodels MixedLM: Random effects covariance is singular (×9)"]


def test_headline_counts_fits_not_converged_apart_from_singular_ones():
    model_info = pd.DataFrame({"converged": [True] * 11 + [False, "True"], "singular": [True] * 11 + [False, "False"]})
    facts = key_facts({"n_rows": 40, "rows_listwise": 33}, model_info, 12, 0)
    assert (1, "fit not converged") in facts and (11, "singular fits") in facts      # the page's <li><b>1</b> ...
    assert not any("or singular" in text for _, text in facts)


@pytest.mark.parametrize("p, shown", [(0.0, "< 2e-16"), (1.2e-90, "< 2e-16"), (2.2e-16, "< 2e-16"),
                                      (2.3e-16, "2.3e-16"), (0.03125, "0.03125"), (float("nan"), "—")])
def test_p_values_below_the_printing_limit_show_as_r_shows_them(p, shown):
    assert p_text(p) == shown


def legends(page: str) -> list[tuple[set, set]]:
    """(header labels, labels the legend under it explains) of every table of the page; a table without
    a legend right under it explains nothing."""
    found = []
    for match in re.finditer(r"<table.*?</table>", page, re.S):
        after = page[match.end():].lstrip()
        legend = after[:after.index("</p>")] if after.startswith('<p class="legend">') else ""
        head = match.group(0).split("</thead>")[0].replace("<wbr>", "")
        found.append(({html.unescape(h) for h in re.findall(r"<th>(.+?)</th>", head)},
                      {name for names in re.findall(r"<b>(.*?)</b>", html.unescape(legend))
                       for name in names.split(", ")}))
    return found


def test_every_column_of_every_table_is_explained_under_it(page, bare):
    for shown in (page, bare):
        tables = legends(shown)
        assert len(tables) >= 7
        for header, explained in tables:
            assert header <= explained, header - explained
    assert "<b>n_levels</b>: number of grouping factors (merTools' n.lvls)" in html.unescape(page)


def test_missingness_counts_and_patterns(page):
    assert "Rows: 40" in page
    assert re.search(r"Rows after listwise deletion \(no missing value in y, x, z, g\): 33<", page)
    assert "Rows after imputation: 40 in each of the 2 imputed data sets" in page
    assert "Patterns of missingness in the data (the complete pattern included): 6" in page
    assert 'alt="missingness patterns' in section_text(page, "Data and missingness")


def test_imputation_diagnostics_with_and_without_chains(page, bare):
    shown = section_text(page, "Imputation diagnostics")
    assert "Imputed variables: y, x, z, extra." in shown
    assert "each iteration of each chain" in shown and "came from elsewhere" not in shown
    external = section_text(bare, "Imputation diagnostics")
    assert "The imputations came from elsewhere (<code>imputation.method: external</code>)" in external
    assert 'alt="observed and imputed distributions' in external


def test_imputation_models_say_what_was_imputed_how_and_what_cannot_carry_the_model(page, bare):
    shown = re.sub(r">\s+<", "><", section_text(page, "Imputation models"))
    assert "<td>x</td><td>1</td><td>yes</td><td>miceforest, single-level, from y, z and extra</td><td>no</td>" in shown
    assert "x has a random slope in model.formula but miceforest imputes it without one: set " \
           "imputation.method: multilevel" in shown
    external = section_text(bare, "Imputation models")
    assert "came from elsewhere" in external and "<table" not in external


def sampler_rows(page: str) -> dict[str, list[str]]:
    """The sampler's diagnostics table: parameter -> its row's other cells."""
    shown = re.sub(r">\s+<", "><", section_text(page, "Imputation models"))
    block = shown[shown.index("Convergence of the multilevel sampler"):]
    rows = re.findall(r"<tr[^>]*><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", block)
    return {name: re.findall(r"<td>([^<]*)</td>", cells) for name, cells in rows}


def test_sampler_convergence_shows_rhat_and_ess_of_every_parameter(page, tmp_path):
    mixed = sampler_rows(page)
    assert list(mixed) == PARAMETERS
    assert all(abs(float(cells[0]) - 1) < 0.02 for cells in mixed.values())       # iid chains agree
    assert all(float(cells[1]) > 100 for cells in mixed.values())                 # of 200 draws: near-independent
    apart = sampler_rows(write_page(tmp_path, mixing=False))
    assert all(float(cells[0]) > 1.5 for cells in apart.values())                 # chains 5 apart: R-hat says so
    assert 'alt="traces of the analysis model' in section_text(page, "Imputation models")


def test_complete_data_say_nothing_was_imputed(tmp_path):
    paths = write_fixture(tmp_path)
    complete = pd.read_parquet(paths["imputed_paths"][0])
    complete.to_parquet(paths["missing_path"], index=False)
    write_report(tmp_path / "report.html", formula=FORMULA, scenario="tiny", **{**paths, "chain_paths": []})
    shown = section_text((tmp_path / "report.html").read_text(encoding="utf-8"), "Imputation diagnostics")
    assert "No value was missing, so nothing was imputed." in shown and "<img " in shown


def test_figures_written_as_png_files_for_snakemakes_report(full):
    for path in full["figures"].values():
        assert path.read_bytes().startswith(b"\x89PNG"), path.name


def test_figures_drawn_by_two_processes_are_the_same_bytes_as_by_one(full, tmp_path):
    """The report job draws its figures two at a time (forked workers): the files and the page are the same."""
    log = tmp_path / "impute.log"
    log.write_text((full["figures"]["forest"].parents[1] / "impute.log").read_text())
    figures = {name: tmp_path / "figures" / f"{name}.png" for name in FIGURES}
    page = write_page(tmp_path, logs={"impute/1": log}, provenance=PROVENANCE, figure_paths=figures, processes=2)
    assert page == full["page"]
    for name, path in figures.items():
        assert path.read_bytes() == full["figures"][name].read_bytes(), name


def test_random_effects_tables_and_plots(page):
    shown = section_text(page, "Random effects")
    assert "VarCorr (mean over imputations)" in shown and "<b>SD over imputations</b>: the SD of the imputations' estimates: a spread, not a standard error" in shown
    assert "7 levels of g" in shown
    assert 'alt="each random-effect SD' in shown and 'alt="caterpillar plot' in shown


def test_model_information_highlights_problem_fits(page):
    assert section_text(page, "Model information").count('<tr class="flagged">') == 1


def test_provenance_rendered_when_given(page):
    shown = section_text(page, "Provenance")
    assert "<pre>scenario: tiny\nseed: 7\nmodel:\n  formula: y ~ x + z + (1 + x | g)\n</pre>" in shown
    assert re.search(r"<td>impute 2</td>\s*<td>2222</td>", shown)
    assert re.search(r"<td>packages numpy</td>\s*<td>2.4.6</td>", shown)
    assert re.search(r"<td>config/config.yaml</td>\s*<td>" + "ab" * 32 + "</td>", shown)
    assert "Run time: 12.3 s" in shown


def test_provenance_not_available_without_it(bare):
    assert "Provenance is not available for this run." in section_text(bare, "Provenance")


def test_explicit_model_vars_and_escaping(bare):
    assert "mlmi report: a&lt;b" in bare and "a<b" not in bare
    assert re.search(r"no missing value in y\): 38<", bare)


@pytest.mark.parametrize("value, shown", [(13.96458, "13.96"), (-2.501642, "-2.502"), (46359.69, "46359.7"),
                                          (7176.0, "7176"), (2.178458e9, "2.178e+09"), (0.000123456, "0.0001235"),
                                          (0.0, "0")])
def test_number_format(value, shown):
    assert number(value) == shown


def test_mertools_legacy_table_is_labelled_not_rubin(bare, page):
    shown = section_text(bare, "Fixed effects")
    assert "merTools legacy table (not Rubin's rules)" in shown and "<td>0.123</td>" in shown
    assert "averages the standard errors instead of the variances" in shown
    assert "merTools legacy" not in page


def test_tests_section_shows_the_pooled_tests_and_what_d1_assumes(page):
    tests = section_text(page, "Tests and model comparison").split("<h3>")[0]
    for shown in ("x_and_z", "x = 0, z = 0", "equal", "x - z = 0", "93.52", "41.27", "0.4137", "< 2e-16"):
        assert f">{shown}<" in tests, shown
    header = re.findall(r"<th>(.+?)</th>", tests.split("</table>")[0].replace("<wbr>", ""))  # the first table
    assert header == ["test", "hypothesis", "F", "df1", "df2", "p", "riv", "dfcom", "m"]
    assert "<td>2</td>" in tests and "<td>2.0</td>" not in tests           # df1 is a count
    assert "Reiter's (2007)" in tests and "about the same fraction" in tests


def test_tests_section_says_how_to_ask_when_none_were(bare):
    tests = section_text(bare, "Tests and model comparison")
    assert "<table" not in tests.split("<h3>")[0]                 # the R² subsection has its own table
    assert "No tests were asked for" in tests and "pooling: {tests: [{name:" in tests


def test_tests_section_shows_the_comparisons_and_what_d2_and_d3_assume(page):
    compared = section_text(page, "Tests and model comparison").split("<h3>Comparisons with nested models</h3>")[1]
    compared = compared.split("<h3>")[0]                                  # not the R² subsection after it
    header = re.findall(r"<th>(.+?)</th>", compared.replace("<wbr>", ""))
    assert header == ["comparison", "nested model", "method", "F", "df1", "df2", "p", "riv", "m"]
    for shown in ("no_slope", "y ~ x + z + (1 | g)", "D2", "D3", "3.217", "300.2", "0.03806"):
        assert f">{shown}<" in compared, shown
    assert "needs ML fits" in compared and "least powerful" in compared
    assert "<strong>no_slope</strong> drops random terms" in compared and "conservative" in compared


def test_a_comparison_that_keeps_the_random_terms_tests_no_boundary():
    from mlmi.fit.formula import parse_formula
    from mlmi.report.run_report import tests_context

    tests = pd.DataFrame({"test": ["no_z", "no_slope"], "hypothesis": ["y ~ x + (1 + x | g)", "y ~ x + z + (1 | g)"],
                          "statistic": [1.0, 2.0], "df": [1, 2], "df_residual": [30.0, 40.0], "p_value": [0.3, 0.2],
                          "riv": [0.1, 0.2], "dfcom": [None, None], "method": ["D3", "D2"], "m": [5, 5]})
    context = tests_context(tests, parse_formula(FORMULA))
    assert context["table"] is None and context["methods"] == ["D2", "D3"] and context["boundary"] == ["no_slope"]
def test_r2_subsection_shows_each_imputation_and_the_mean(page):
    tests = section_text(page, "Tests and model comparison")
    assert "<h3>Variance explained (R²)</h3>" in tests
    header = re.findall(r"<th>(.+?)</th>", tests[tests.index("Variance explained"):].replace("<wbr>", ""))
    assert header[:6] == ["imputation", "marginal", "conditional", "RB1", "RB2", "SB"]
    assert "<td>pooled</td>" in tests and "<td>0.1923</td>" in tests
    assert "mean over the 2 imputations" in tests and "mitml::multilevelR2" in tests


def test_variance_components_with_intervals_lead_the_random_effects(page):
    random = section_text(page, "Random effects")
    start = random.index("Standard deviations and correlations with 95% intervals")
    assert start < random.index("VarCorr (mean over imputations)")
    shown = random[start:random.index("VarCorr (mean over imputations)")]
    for value in ("1.525", "1.306", "1.781", "-0.4945", "5.985", "atanh", "1.54"):   # 1.54: the truth
        assert f"<td>{value}</td>" in shown, value
    assert "geometric mean" in shown and "not symmetric" in shown and "no interval" not in shown


def test_a_run_before_r2_and_intervals_says_so(tmp_path):
    paths = write_fixture(tmp_path)
    for name in ("r2.csv", "variance_components.csv"):
        (tmp_path / "pooled" / name).unlink()
    write_report(tmp_path / "report.html", formula=FORMULA, scenario="old", **paths)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "predates the R² table" in page and "predates the table of variance components" in page


@pytest.mark.parametrize("n", [2, 7, 500])
def test_kernel_density_is_scipys_gaussian_kde(n):
    """The imputation figure's densities: scipy.stats.gaussian_kde's (Scott's bandwidth), to rounding, on values
    with ties and far tails; the grid is evaluated in chunks (figures.KDE_CHUNK) with the same result."""
    from scipy.stats import gaussian_kde

    from mlmi.report.figures import kernel_density

    values = pd.Series(np.round(np.random.default_rng(n).gamma(2.0, 3.0, size=n), 1))
    grid = np.linspace(values.min() - 10, values.max() + 10, 200)
    np.testing.assert_allclose(kernel_density(values, grid), gaussian_kde(values)(grid), rtol=1e-12, atol=1e-300)
