"""The mlmi report: one self-contained HTML page in place of the vignette's console output.

Everything the page shows is read from the files of design §4 (pooled tables, fits, data, imputations,
chains, the start-up check's and the imputation models' records) and only formatted here, never
re-estimated, so the page and the CSVs always agree. This module assembles the data; the markup is in the
Jinja2 templates of ``mlmi/report/templates`` (autoescaped) and the figures are drawn by
``mlmi.report.figures``. The page needs no network: the stylesheet is inline and every figure is an ``<img>`` with a data: URI.
"""
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from mlmi.fit.formula import parse_formula
from mlmi.fit.record import FitRecord
from mlmi.pool.failed_fits import left_out
from mlmi.report import figures
from mlmi.run.io import read_json, write_bytes
from mlmi.run.layout import FIGURES  # noqa: F401 (FIGURES: the page's)
from mlmi.data.missingness import summarize_missingness
from mlmi.pool.rubin import exponentiated
from mlmi.report.page import ENV, number, p_text, render_page, table  # noqa: F401 (number, p_text: the page's formats)
from mlmi.pool.summarize import true_random_value, truth_parameters
from mlmi.report.results import RunResults, is_true, recorded_warnings
from mlmi.report.run_warnings import gather_warnings, logged_warnings
from mlmi.report.variance import r2_context, variance_components_context

#: How a true/false column of a table reads.
YES_NO = {True: "yes", False: "no"}
_LEGENDS = yaml.safe_load(resources.files("mlmi.report").joinpath("templates", "legends.yaml")
                           .read_text(encoding="utf-8"))
#: What each column of the page's tables is, for the legend under each table (``table``'s ``legend``).
COLUMNS = _LEGENDS["columns"]
#: The random-effect parameters' names (broom.mixed's), for their table's legend.
RANDOM_COLUMNS = {**COLUMNS, "term": _LEGENDS["random_terms"]}
#: The pooled tests' columns (p, riv and df mean other things there than in the fixed effects' table).
TEST_COLUMNS = _LEGENDS["tests"]
#: How the tests' table labels pooled/tests.csv's columns on the page.
TEST_LABELS = {"test": "test", "hypothesis": "hypothesis", "statistic": "F", "df": "df1", "df_residual": "df2",
               "p_value": "p", "riv": "riv", "dfcom": "dfcom", "m": "m"}
#: How the model comparisons' table labels them (no dfcom: D2 and D3 do not use it).
COMPARISON_LABELS = {"test": "comparison", "hypothesis": "nested model", "method": "method", "statistic": "F",
                     "df": "df1", "df_residual": "df2", "p_value": "p", "riv": "riv", "m": "m"}


def write_report(path, *, pooled_dir, missing_path, fit_paths, listwise_fit_path, imputed_paths, formula: str,
                 scenario: str, chain_paths=(), truth_path=None, categorical=(), model_vars=None, logs=None,
                 provenance: dict | None = None, figure_paths: dict | None = None, models_path=None,
                 trace_paths=(), checks_path=None, processes: int = 1) -> None:
    """Write the report page to ``path``, and its figures as PNG files to ``figure_paths`` (name to path), drawn by
    up to ``processes`` processes at once (``mlmi.report.figures.render_all``).

    The pooled tables are read from ``pooled_dir`` (``mlmi.report.results``); the other files are given: the data
    with its missing values, the fit records, the imputed data sets, their chains (none when imputed
    elsewhere), ``truth_path`` (simulated data only: without it the page has no truth anywhere),
    ``models_path`` and ``trace_paths`` (what was imputed how; the multilevel sampler's draws) and
    ``checks_path`` (the start-up check's record). ``categorical`` variables are drawn as bars;
    ``model_vars`` default to the columns ``formula`` names. ``logs`` maps job labels (``impute/1``) to the
    logs of jobs whose warnings no record carries; ``provenance`` is ``mlmi.run.provenance.describe_run``'s record.
    """
    fits = [FitRecord.from_json(p) for p in fit_paths]     # first: another mlmi's fits are refused before any work
    listwise = FitRecord.from_json(listwise_fit_path)
    results = RunResults.load(Path(pooled_dir).parent, required=())
    table_of = results.table
    fixed, model_info = table_of("fixed_effects"), table_of("model_info")
    data = pd.read_parquet(missing_path)
    parsed = parse_formula(formula)
    model_vars = parsed.variables(data.columns) if model_vars is None else model_vars
    truth = read_json(truth_path) if truth_path is not None else None
    imputed = [pd.read_parquet(p) for p in imputed_paths]
    chains = [pd.read_csv(p) for p in chain_paths]
    models = pd.read_csv(models_path, keep_default_na=False) if models_path else None
    summary = summarize_missingness(data, model_vars)
    scale = fits[0].link_scale
    variables = imputed_variables(data, imputed)
    drawn = {
        "missingness_patterns": figures.patterns_plot(summary["patterns"]),
        "imputation_diagnostics": figures.imputation_plot(data, imputed, chains, variables, set(categorical)),
        "forest": figures.forest_plot(fixed, table_of("listwise"), table_of("by_imputation"), truth, parsed.response,
                                      scale),
        "random_effects": figures.random_effects_plot(pooled_fits(fits, model_info), listwise,
                                                      table_of("random_effects"), truth, parsed.response, scale),
        "caterpillar": figures.caterpillar_plot(table_of("ranef"), parsed.response, scale),
    }
    images = figures.render_all(drawn, processes)
    for name, figure_path in (figure_paths or {}).items():
        write_bytes(images[name].png, figure_path)
    warnings = gather_warnings(logged_warnings(logs or {}), model_info, fixed,
                               recorded_warnings(read_json(checks_path) if checks_path else None, models))
    render_page(
        "report.html.j2", path, title=f"mlmi report: {scenario}", formula=formula, has_truth=truth is not None,
        model_kind=fits[0].model_kind,
        facts=key_facts(summary, model_info, len(imputed), len(warnings)), warnings=warnings,
        nothing_imputed=figures.NOTHING_IMPUTED,
        fixed={"table": table(fixed_effects_table(fixed, table_of("listwise"), truth), legend=COLUMNS),
               "factors": fits[0].factors,
               "ratios": ratios_context(fixed, fits[0].ratio_kind),
               "forest": images["forest"],
               "by_imputation": table(by_imputation_table(table_of("by_imputation"), fixed), legend={
                   "imputation": "imputed data set k; pooled: the mean over the pooled imputations",
                   **{term: "the term's estimate in that data set" for term in fixed["term"]}}),
               "mertools": (table(mertools_table(table_of("mertools"), fixed), legend=COLUMNS)
                            if results.has_table("mertools") else None)},
        missing={**summary, "model_vars": model_vars, "rows_imputed": len(imputed[0]), "m": len(imputed),
                 "fractions": table(fractions_table(summary, model_vars), legend=COLUMNS),
                 "patterns": images["missingness_patterns"],
                 "patterns_shown": min(figures.PATTERNS_SHOWN, summary["n_patterns"])},
        models=models_context(models, [pd.read_csv(p) for p in trace_paths]),
        imputation={"variables": variables, "has_chains": bool(chains), "image": images["imputation_diagnostics"]},
        random=random_context(table_of("varcorr"), table_of("random_effects"), table_of("ranef"), truth, images),
        tests=tests_context(results.table("tests") if results.has_table("tests") else None, parsed),
        r2=r2_context(results.table("r2") if results.has_table("r2") else None, _LEGENDS["r2"]),
        variance=variance_components_context(
            results.table("variance_components") if results.has_table("variance_components") else None,
            figures.random_values(truth_parameters(truth)) if truth is not None else None,
            _LEGENDS["variance_components"]),
        model_info=table(model_info, flagged_fits(model_info), COLUMNS), provenance=provenance_context(provenance))


def ratios_context(fixed: pd.DataFrame, kind: str | None) -> dict | None:
    """The odds or rate ratios of a logit or log model (exp of the pooled estimates and intervals); else None."""
    if kind is None:
        return None
    legend = {"term": COLUMNS["term"], "ratio": f"exp of the pooled estimate: the {kind} per unit of the term",
              "conf_low": "exp of the pooled interval's lower end",
              "conf_high": "exp of the pooled interval's upper end"}
    return {"kind": kind, "table": table(exponentiated(fixed), legend=legend)}


def tests_context(tests: pd.DataFrame | None, formula) -> dict:
    """The pooled tests (``pooled/tests.csv``) as two tables, each None when nothing of its kind was asked for (or
    the run is older than the tests): the D1 Wald tests, with whether they used the complete-data df, and the
    likelihood-ratio comparisons with nested models (D2, D3), with the methods they used and the comparisons whose
    nested model drops random terms of ``formula`` (the parsed model.formula), which test variances on their
    boundary."""
    if tests is None:
        tests = pd.DataFrame(columns=[*TEST_LABELS, "method"])
    wald, compared = tests[tests["method"] == "D1"], tests[tests["method"] != "D1"]
    boundary = [name for name, nested in dict(zip(compared["test"], compared["hypothesis"])).items()
                if parse_formula(nested).re_names != formula.re_names]
    return {"table": _tests_table(wald, TEST_LABELS) if not wald.empty else None,
            "reiter": bool(wald["dfcom"].notna().all()),
            "compare": _tests_table(compared, COMPARISON_LABELS) if not compared.empty else None,
            "methods": sorted(set(compared["method"])), "boundary": boundary}


def _tests_table(tests: pd.DataFrame, labels: dict):
    """Rows of pooled/tests.csv as a page table, its columns labelled by ``labels``."""
    shown = tests[list(labels)].rename(columns=labels)
    shown["df1"] = shown["df1"].astype(int).astype(str)     # a count, not a measurement: no decimals
    return table(shown, legend=TEST_COLUMNS)


def key_facts(summary: dict, model_info: pd.DataFrame, m: int, n_warnings: int) -> list[tuple[int, str]]:
    """The run at a glance, as (number, what) pairs: imputations (and how many pooled, if not all), rows before
    and after listwise deletion, fits that did not converge and singular fits (counted apart: a singular fit
    converged, and is pooled), warnings."""
    excluded = len(left_out(model_info))
    facts = [(m, "imputed data set", f", {m - excluded} pooled" if excluded else ""), (summary["n_rows"], "row", ""),
             (summary["rows_listwise"], "row", " after listwise deletion"),
             (sum(not is_true(value) for value in model_info["converged"]), "fit", " not converged"),
             (sum(is_true(value) for value in model_info["singular"]), "singular fit", ""),
             (n_warnings, "warning", "")]
    return [(value, f"{noun}{'' if value == 1 else 's'}{rest}") for value, noun, rest in facts]


def fixed_effects_table(fixed: pd.DataFrame, listwise: pd.DataFrame, truth: dict | None) -> pd.DataFrame:
    """Listwise and pooled fixed effects side by side (two header rows), truth first when known."""
    merged = fixed.merge(listwise, on="term", how="left", suffixes=("", "_listwise"))
    columns = {("", "term"): merged["term"]}
    if truth is not None:
        columns[("", "truth")] = merged["term"].map(truth["fixed_effects"])
    columns[("listwise", "estimate")] = merged["estimate_listwise"]
    columns[("listwise", "SE")] = merged["std_error_listwise"]
    pooled = {"estimate": "estimate", "SE": "std_error", "df": "df", "95% CI low": "conf_low",
              "95% CI high": "conf_high", "p": "p_value", "riv": "riv", "fmi": "fmi"}
    columns.update({("pooled", label): merged[name] for label, name in pooled.items()})
    return pd.DataFrame(columns)


def by_imputation_table(by_imputation: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """Each imputation's fixed-effect estimates, one row per imputation, and the pooled row."""
    terms = list(fixed["term"])
    wide = by_imputation.pivot(index="imputation", columns="term", values="estimate")[terms]
    wide.index = wide.index.astype(str)
    wide.loc["pooled"] = fixed.set_index("term")["estimate"][terms]
    return wide.rename_axis(index="imputation", columns=None).reset_index()


def mertools_table(legacy: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """merTools' modelFixedEff table, asked for explicitly, beside Rubin's standard errors."""
    rubin = fixed.set_index("term")[["std_error", "df"]].rename(columns=lambda c: f"Rubin {c}")
    return legacy.join(rubin, on="term").rename(columns={"std_error": "merTools std_error", "df": "merTools df"})


def fractions_table(summary: dict, model_vars: list[str]) -> pd.DataFrame:
    """Fraction missing per variable, and whether the model uses it."""
    return pd.DataFrame({"variable": list(summary["fraction_missing"]),
                         "fraction missing": list(summary["fraction_missing"].values()),
                         "in the model": ["yes" if name in model_vars else "" for name in summary["fraction_missing"]]})


def imputed_variables(data: pd.DataFrame, imputed: list[pd.DataFrame]) -> list[str]:
    """Columns with missing values that the imputed data sets filled in."""
    return [c for c in data.columns if data[c].isna().any() and not imputed[0][c].isna().any()]


def models_context(models: pd.DataFrame | None, traces: list[pd.DataFrame]) -> dict | None:
    """What was imputed how (None for external imputations; no table when nothing was imputed), and for the
    multilevel sampler its chains' R-hat and ESS and the traces of the model's parameters."""
    if models is None:
        return None
    if models.empty:
        return {"table": None, "sampler": None}
    traces = [t for t in traces if not t.empty]
    sampler = None
    if traces:
        from mlmi.impute.multilevel import chain_diagnostics  # ArviZ: paid only by a report of the multilevel method

        sampler = {"table": table(chain_diagnostics(traces), legend=COLUMNS), "traces": figures.render(
            figures.trace_plot(traces), "traces of the analysis model's parameters in each imputation's chain")}
    shown = models.replace({"in_model": YES_NO, "carries_model": YES_NO})
    return {"table": table(shown, legend=COLUMNS), "sampler": sampler}


def pooled_fits(fits: list[FitRecord], model_info: pd.DataFrame) -> dict[str, FitRecord]:
    """The fit records (in imputation order) that were pooled, by imputation label."""
    excluded = left_out(model_info)
    return {str(k): fit for k, fit in enumerate(fits, start=1) if str(k) not in excluded}


def random_context(varcorr, random, ranef, truth: dict | None, images: dict) -> dict:
    """VarCorr, each parameter's mean and spread over imputations (truth first when known), levels per group."""
    stats = random[["group", "term"]].copy()
    if truth is not None:
        true = [true_random_value(truth, group, term) for group, term in zip(random["group"], random["term"])]
        stats["truth"] = [float("nan") if value is None else value for value in true]
    stats["mean over imputations"] = random["estimate"]
    stats["SD over imputations"] = random["between_sd"]
    levels = ranef.groupby("group", sort=False)["level"].nunique()
    return {"varcorr": table(varcorr, legend=COLUMNS), "stats": table(stats, legend=RANDOM_COLUMNS),
            "levels": list(levels.items()), "plot": images["random_effects"], "caterpillar": images["caterpillar"]}


def flagged_fits(model_info: pd.DataFrame) -> list[bool]:
    """Per fit, whether it did not converge or is singular."""
    return [not is_true(row.converged) or is_true(row.singular) for row in model_info.itertuples(index=False)]


def model_info_section(model_info: pd.DataFrame) -> str:
    """The section of one row per fit, alone: fits that did not converge or are singular highlighted."""
    return ENV.get_template("model_info.html.j2").render(model_info=table(model_info, flagged_fits(model_info),
                                                                            COLUMNS))


def flatten(record: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested mapping as (dotted key, value) rows, for a two-column table."""
    rows = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        rows += flatten(value, f"{name} ") if isinstance(value, dict) else [(name, value)]
    return rows


def provenance_context(provenance: dict | None) -> dict | None:
    """Config as run (YAML), seeds, versions, input checksums and run time; None when there is none."""
    if provenance is None:
        return None
    return {"config": yaml.safe_dump(provenance["config"], sort_keys=False, allow_unicode=True),
            "seeds": table(pd.DataFrame(flatten(provenance["seeds"]), columns=["seed", "value"]), legend=COLUMNS),
            "versions": table(pd.DataFrame(flatten(provenance["versions"]), columns=["software", "version"]),
                              legend=COLUMNS),
            "inputs": table(pd.DataFrame(list(provenance["inputs"].items()), columns=["file", "sha256"]),
                            legend=COLUMNS),
            "run_seconds": provenance["run_seconds"]}
