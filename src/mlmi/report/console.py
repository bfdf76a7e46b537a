"""The pooled model as console text, the way R's ``summary(modList)`` and merTools' ``fastdisp`` print it.

Only a results folder (design §4) is read: the pooled CSVs, and ``fits/imp_1.json`` for the
formula, the estimation method and the grouping factor. Every number is the CSVs' value,
formatted; the one derived number is AIC, the mean over the imputed fits, as merTools shows it.
"""
import math

import pandas as pd

from mlmi.fit.record import FitRecord
from mlmi.pool.failed_fits import left_out, left_out_warnings
from mlmi.pool.rubin import exponentiated
from mlmi.report.results import ResultsError, RunResults, fit_warnings  # noqa: F401 (ResultsError: the CLI's)

#: What a results folder must hold for the summary: these pooled tables, and ``fits/imp_1.json``.
REQUIRED = ("fixed_effects", "varcorr", "model_info")

#: Below this a p-value prints as R prints it: "< 2e-16" (R's .Machine$double.eps).
P_FLOOR = 2.220446e-16


def read_results(folder) -> RunResults:
    """The run's results, or a ResultsError naming what is missing (``fits/imp_1.json`` last)."""
    results = RunResults.load(folder, required=REQUIRED)
    results.fit("imp_1")
    return results


def decimals(values, significant: int) -> int:
    """Decimals that give the smallest non-zero magnitude in ``values`` ``significant`` digits (R-like columns)."""
    smallest = min((abs(v) for v in values if v and math.isfinite(v)), default=1.0)
    return min(8, max(0, significant - 1 - math.floor(math.log10(smallest))))


def column(values, significant: int) -> list[str]:
    """One table column of numbers with a common number of decimals."""
    places = decimals(values, significant)
    return [f"{v:.{places}f}" for v in values]


def p_value(p: float) -> str:
    """A p-value as R's format.pval prints it: three significant digits, "< 2e-16" below the floor."""
    return "< 2e-16" if p < P_FLOOR else f"{p:.3g}"


def aligned(rows: list[list[str]], left: int = 1) -> list[str]:
    """Rows of cells as lines: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [" ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            .rstrip() for row in rows]


def fixed_effects_block(fixed: pd.DataFrame) -> list[str]:
    """The pooled fixed effects: estimate, SE, t, Barnard-Rubin df and p, one aligned line per term."""
    cells = zip(fixed["term"], column(fixed["estimate"], 4), column(fixed["std_error"], 4),
                column(fixed["statistic"], 3), column(fixed["df"], 4), map(p_value, fixed["p_value"]))
    return aligned([["", "Estimate", "Std. Error", "t value", "df", "Pr(>|t|)"], *map(list, cells)])


def ratios_block(fixed: pd.DataFrame, kind: str | None) -> list[str]:
    """Odds or rate ratios (exp of the pooled estimates and 95% intervals) of a logit or log model; else nothing."""
    if kind is None:
        return []
    ratios = exponentiated(fixed)
    cells = zip(ratios["term"], column(ratios["ratio"], 4), column(ratios["conf_low"], 4),
                column(ratios["conf_high"], 4))
    return ["", f"{kind.capitalize()}s (exp of the pooled estimates and intervals):",
            *aligned([["", kind.capitalize(), "2.5 %", "97.5 %"], *map(list, cells)])]


def tests_block(tests: pd.DataFrame | None) -> list[str]:
    """The pooled tests (``pooled/tests.csv``) as mitml prints them: F, df1, df2, p and riv per test, with what it
    tests; the D1 tests first, then the model comparisons (D2, D3); nothing when no test was asked for (or the run
    is older than the tests)."""
    if tests is None or tests.empty:
        return []
    wald, compared = tests[tests["method"] == "D1"], tests[tests["method"] != "D1"]
    lines = []
    if not wald.empty:
        reference = "Reiter's df2 from dfcom = n - npar" if wald["dfcom"].notna().all() else "large-sample df2"
        lines += ["", f"Pooled Wald tests (D1, {reference}):",
                  *_test_rows(wald, ["", "Hypothesis"], [wald["test"], wald["hypothesis"]])]
    if not compared.empty:
        lines += ["", "Pooled likelihood-ratio comparisons with nested models (D2, D3):",
                  *_test_rows(compared, ["", "Method", "Nested model"],
                              [compared["test"], compared["method"], compared["hypothesis"]])]
    return lines


def _test_rows(tests: pd.DataFrame, header: list[str], labels: list) -> list[str]:
    """Aligned rows of tests: the ``labels`` columns (left), then F, df1, df2, P(>F) and RIV."""
    cells = zip(*labels, column(tests["statistic"], 4), [str(int(k)) for k in tests["df"]],
                column(tests["df_residual"], 4), map(p_value, tests["p_value"]), column(tests["riv"], 3))
    return aligned([[*header, "F value", "df1", "df2", "P(>F)", "RIV"], *map(list, cells)], left=len(header))


def error_terms_block(varcorr: pd.DataFrame) -> list[str]:
    """VarCorr as lme4 prints it: group, name, SD, and each term's correlations with the terms before it."""
    sds = varcorr[varcorr["var2"].isna()]
    cors = varcorr[varcorr["var2"].notna()]
    rows = [[" Groups", "Name", "Std.Dev.", "Corr"]]
    previous = None
    for (group, name), sd in zip(sds[["grp", "var1"]].itertuples(index=False), column(sds["sdcor"], 4)):
        mine = cors[(cors["grp"] == group) & (cors["var2"] == name)]
        rows.append([f" {group}" if group != previous else "", "" if pd.isna(name) else name, sd,
                     " ".join(f"{c:.3f}" for c in mine["sdcor"])])
        previous = group
    return aligned(rows, left=4)


def variance_components_block(vc: pd.DataFrame | None) -> list[str]:
    """The pooled SDs, correlations and sigma with their 95% intervals (``pooled/variance_components.csv``), one
    aligned line each; nothing for a run older than the table."""
    if vc is None or vc.empty:
        return []
    interval = [f"[{low}, {high}]" if low != "nan" else "(none: a singular fit)"
                for low, high in zip(column(vc["conf_low"], 4), column(vc["conf_high"], 4))]
    cells = zip((f" {group}" for group in vc["group"]), vc["term"], column(vc["estimate"], 4), interval)
    return ["", "Variance components (Rubin's rules on log SD / Fisher z, back-transformed):",
            *aligned([[" Groups", "Term", "Estimate", "95% CI"], *map(list, cells)], left=2)]


def r2_line(r2: pd.DataFrame | None) -> list[str]:
    """The pooled R² (``pooled/r2.csv``'s ``pooled`` row, the mean over imputations as mitml::multilevelR2);
    nothing for a run older than the table."""
    if r2 is None or r2.empty:
        return []
    pooled = r2[r2["imputation"].astype(str) == "pooled"].iloc[0]
    if pd.isna(pooled["r2_marginal"]):                  # a generalized model's fits: no R² computed
        return []
    m = int((r2["imputation"].astype(str) != "pooled").sum())
    line = (f"R2 (mean over {m} imputations): marginal {pooled['r2_marginal']:.4f}, conditional "
            f"{pooled['r2_conditional']:.4f} (Nakagawa & Schielzeth); ")
    if pd.isna(pooled["r2_rb1"]):                       # several grouping factors: no null model of one
        return [line + "RB1, RB2 and SB need a model of one grouping factor"]
    return [line + f"RB1 {pooled['r2_rb1']:.4f}, RB2 {pooled['r2_rb2']:.4f}, SB {pooled['r2_sb']:.4f} "
            "(against y ~ 1 + (1 | group))"]


def counts_line(model_info: pd.DataFrame, fit: FitRecord) -> str:
    """Observations per imputed data set (and after listwise deletion) and levels of each grouping factor."""
    imputed = model_info[model_info["imputation"] != "listwise"]
    listwise = model_info.loc[model_info["imputation"] == "listwise", "n_obs"]
    groups = ", ".join(f"{name}, {count}" for name, count in fit.n_groups.items())
    after = f" ({listwise.iloc[0]} after listwise deletion)" if len(listwise) else ""
    return f"number of obs: {imputed['n_obs'].iloc[0]}{after}, groups: {groups}"


def imputation_block(models: pd.DataFrame | None) -> list[str]:
    """How each incomplete column was imputed (``imputations/models.csv``, made when the run imputes itself)."""
    if models is None:
        return []
    return ["", "Imputation:", *(f"  {row.variable} (level {row.level}): {row.imputed_by}"
                                 for row in models.itertuples())]


def summary(folder) -> str:
    """The pooled model of a results folder as aligned console text (``mlmi summary``)."""
    results = read_results(folder)
    fixed, model_info, fit = results.table("fixed_effects"), results.table("model_info"), results.fit("imp_1")
    aic = model_info.loc[~model_info["imputation"].isin(["listwise", *left_out(model_info)]), "aic"]
    kind = fit.model_kind
    imputation = imputation_block(results.imputation_models())
    warnings = (left_out_warnings(model_info) + results.recorded_warnings(labelled=False)
                + fit_warnings(model_info, fixed))
    lines = [
        f"{kind[0].upper()}{kind[1:]} fit by {fit.estimation} on {int(fixed['m'].iloc[0])} imputed data sets, "
        "pooled by Rubin's rules (Barnard-Rubin df)",
        f"Formula: {fit.formula}",
        "",
        "Fixed effects:",
        *fixed_effects_block(fixed),
        *ratios_block(fixed, fit.ratio_kind),
        *tests_block(results.table("tests") if results.has_table("tests") else None),
        "",
        "Error terms (mean over imputations):",
        *error_terms_block(results.table("varcorr")),
        *variance_components_block(results.table("variance_components")
                                   if results.has_table("variance_components") else None),
        "---",
        counts_line(model_info, fit),
        f"AIC = {aic.mean():.1f} (mean over {len(aic)} imputations)",
        *r2_line(results.table("r2") if results.has_table("r2") else None),
        *imputation,
    ]
    if warnings:
        lines += ["", "Warnings:", *(f"  {warning}" for warning in warnings)]
    return "\n".join(lines)
