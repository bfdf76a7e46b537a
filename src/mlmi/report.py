"""The mlmi report: one self-contained HTML page in place of the vignette's console output.

Everything the page shows is read from the pooled tables and data files of design §4 and
only formatted here, never recomputed, so the page and the CSVs always agree. The page
needs no network: the stylesheet is inline and figures are embedded as base64 PNG.
"""
import base64
import html
import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from mlmi.formula import parse_formula
from mlmi.io import read_json
from mlmi.missingness import summarize_missingness
from mlmi.pool import negligible_between

#: How many levels of the grouping factor the conditional-modes table shows.
RANEF_LEVELS_SHOWN = 5

POOLED_FILES = {
    "fixed": "fixed_effects.csv",
    "by_imputation": "fixed_effects_by_imputation.csv",
    "listwise": "listwise_fixed_effects.csv",
    "random": "random_effects.csv",
    "varcorr": "varcorr.csv",
    "ranef": "ranef.csv",
    "model_info": "model_info.csv",
}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 68rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.2rem; }
p.lead { color: #555; margin-top: 0; }
code { background: #f3f3f3; padding: .1rem .3rem; border-radius: 3px; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f6f6f6; }
th[colspan] { text-align: center; border-bottom: 2px solid #ccc; }
td { white-space: nowrap; }
section { overflow-x: auto; }
tr.flagged td { background: #fde2e1; }
ul.warnings li { color: #8a1c12; }
img { max-width: 100%; }
""" + "".join(  # table() tags each text column's position; those cells align left
    f"table.text-{i} td:nth-child({i}), table.text-{i} tr:last-child th:nth-child({i}) {{ text-align: left; }}\n"
    for i in range(1, 21))


def write_report(path, *, pooled_dir, missing_path, formula, scenario, model_vars=None, truth_path=None,
                 warnings=()) -> None:
    """Write the report page to ``path``.

    Parameters
    ----------
    path : str or Path
        The HTML file to write.
    pooled_dir : str or Path
        Folder with the pooled tables of design §4 (``fixed_effects.csv`` and the rest).
    missing_path : str or Path
        ``data/missing.parquet``: the data with its missing values.
    formula : str
        The lme4 model formula, shown in the title.
    scenario : str
        The scenario name, shown in the title.
    model_vars : list of str, optional
        Columns the model uses, for the listwise-deletion row count; by default the data
        columns named in ``formula``.
    truth_path : str or Path, optional
        ``data/truth.json`` for simulated data; without it the page has no truth column.
    warnings : iterable of str
        Warnings from earlier stages, listed first on the page.
    """
    tables = {key: pd.read_csv(Path(pooled_dir) / name) for key, name in POOLED_FILES.items()}
    legacy = Path(pooled_dir) / "mertools_fixed_effects.csv"
    data = pd.read_parquet(missing_path)
    if model_vars is None:
        model_vars = parse_formula(formula).variables(data.columns)
    truth = read_json(truth_path) if truth_path is not None else None
    sections = [
        warnings_section(list(warnings), tables["model_info"], tables["fixed"]),
        missingness_section(summarize_missingness(data, model_vars), model_vars),
        fixed_effects_section(tables["fixed"], tables["listwise"], tables["by_imputation"], truth),
        *([mertools_section(pd.read_csv(legacy), tables["fixed"])] if legacy.exists() else []),
        by_imputation_section(tables["by_imputation"], tables["fixed"]),
        random_effects_section(tables["varcorr"], tables["random"], truth),
        ranef_section(tables["ranef"]),
        model_info_section(tables["model_info"]),
    ]
    Path(path).write_text(page(scenario, formula, int(tables["fixed"]["m"].iloc[0]), sections), encoding="utf-8")


def page(scenario: str, formula: str, m: int, sections: list[str]) -> str:
    """The whole HTML document: title with scenario and formula, inline style, sections."""
    title = f"mlmi report: {html.escape(scenario)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        f"<p class=\"lead\">Linear mixed model <code>{html.escape(formula)}</code>, fitted by REML on each of "
        f"{m} imputed data sets and pooled with Rubin's rules, next to the fit after listwise deletion.</p>\n"
        + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def section(title: str, lead: str, body: str) -> str:
    """One titled section with its one-line plain-language explanation."""
    return f"<section>\n<h2>{html.escape(title)}</h2>\n<p class=\"lead\">{html.escape(lead)}</p>\n{body}\n</section>"


def number(value: float) -> str:
    """Four significant digits (``.4g``), but numbers from 100 to 1e6 keep one decimal so close AICs stay apart."""
    if pd.isna(value) or abs(value) < 1 or abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.{max(4, len(str(int(abs(value)))) + 1)}g}"


def table(frame: pd.DataFrame, flagged=None) -> str:
    """A DataFrame as an HTML table (text escaped, floats by ``number``), ``flagged`` rows highlighted.

    Text columns get a ``text-<position>`` class so the stylesheet aligns them left, numbers right.
    """
    text = [f"text-{i}" for i, (_, column) in enumerate(frame.items(), start=1)
            if not pd.api.types.is_numeric_dtype(column)]
    markup = frame.to_html(index=False, float_format=number, na_rep="—", border=0, escape=True, classes=text)
    if flagged is None:
        return markup
    head, body = markup.split("<tbody>")
    rows = body.split("<tr>")
    marked = [('<tr class="flagged">' if flag else "<tr>") + row for flag, row in zip(flagged, rows[1:])]
    return head + "<tbody>" + rows[0] + "".join(marked)


def figure_png(figure: Figure, alt: str) -> str:
    """Embed a matplotlib figure as an ``<img>`` with a base64 PNG (no external file, no network)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def is_true(value) -> bool:
    """A flag read back from CSV (bool, numpy bool or the text "True"); missing counts as false."""
    return str(value).strip().lower() in ("true", "1")


def gather_warnings(warnings: list[str], model_info: pd.DataFrame, fixed: pd.DataFrame) -> list[str]:
    """Warnings passed in, fits that did not converge or are singular (or warned), terms with riv ~ 0."""
    found = list(warnings)
    for row in model_info.itertuples(index=False):
        problems = ["did not converge"] if not is_true(row.converged) else []
        if is_true(row.singular):
            problems.append("singular fit (a variance at zero or a correlation at ±1)")
        if not pd.isna(row.warnings) and str(row.warnings).strip():
            problems.append(str(row.warnings))
        if problems:
            found.append(f"fit {row.imputation}: " + "; ".join(problems))
    return found + negligible_between(fixed)


def warnings_section(warnings: list[str], model_info: pd.DataFrame, fixed: pd.DataFrame) -> str:
    """Section: every warning in one list, or a plain statement that there are none."""
    found = gather_warnings(warnings, model_info, fixed)
    body = ('<ul class="warnings">\n' + "\n".join(f"<li>{html.escape(w)}</li>" for w in found) + "\n</ul>"
            if found else "<p>No warnings.</p>")
    return section("Warnings", "Problems met while imputing, fitting and pooling; read these first.", body)


def missingness_section(summary: dict, model_vars: list[str]) -> str:
    """Section: Amelia's summary of the data, fraction missing per variable and row counts."""
    fractions = pd.DataFrame({
        "variable": list(summary["fraction_missing"]),
        "fraction missing": list(summary["fraction_missing"].values()),
        "in the model": ["yes" if name in model_vars else "" for name in summary["fraction_missing"]],
    })
    facts = (
        f"<ul>\n<li>Rows: {summary['n_rows']}</li>\n"
        f"<li>Rows after listwise deletion (no missing value in {html.escape(', '.join(model_vars))}): "
        f"{summary['rows_listwise']}</li>\n"
        f"<li>Patterns of missingness in the data (the complete pattern included): {summary['n_patterns']}</li>\n</ul>"
    )
    return section("Data and missingness",
                   "How much of the data is missing, and how many rows listwise deletion would keep.",
                   facts + "\n" + table(fractions))


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


def forest_plot(fixed: pd.DataFrame, listwise: pd.DataFrame, by_imputation: pd.DataFrame,
                truth: dict | None) -> Figure:
    """One panel per term: 95% intervals of the listwise fit, each imputation (estimate ± 1.96 SE), pooled."""
    imputations = sorted(by_imputation["imputation"].unique())
    labels = ["listwise"] + [f"imputation {k}" for k in imputations] + ["pooled"]
    figure = Figure(figsize=(7.5, len(fixed) * (0.25 * len(labels) + 0.6)))
    axes = figure.subplots(len(fixed), 1, squeeze=False)[:, 0]
    for ax, term in zip(axes, fixed["term"]):
        rows = interval_rows(term, fixed, listwise, by_imputation)
        for label, (estimate, low, high, colour) in rows.items():
            y = len(labels) - 1 - labels.index(label)
            ax.errorbar(estimate, y, xerr=[[estimate - low], [high - estimate]], fmt="o", color=colour, capsize=2)
        if truth is not None and term in truth["fixed_effects"]:
            ax.axvline(truth["fixed_effects"][term], color="#c0392b", linestyle="--")
        ax.set_yticks(range(len(labels)), labels[::-1], fontsize=8)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_title(term, loc="left", fontsize=10)
        ax.grid(axis="x", color="#eee")
    figure.tight_layout()
    return figure


def interval_rows(term: str, fixed: pd.DataFrame, listwise: pd.DataFrame,
                  by_imputation: pd.DataFrame) -> dict[str, tuple[float, float, float, str]]:
    """(estimate, low, high, colour) per plotted row of one term, straight from the CSVs."""
    rows = {}
    for row in listwise[listwise["term"] == term].itertuples(index=False):
        rows["listwise"] = (row.estimate, row.conf_low, row.conf_high, "#7f7f7f")
    for row in by_imputation[by_imputation["term"] == term].itertuples(index=False):
        rows[f"imputation {row.imputation}"] = (row.estimate, row.estimate - 1.96 * row.std_error,
                                                row.estimate + 1.96 * row.std_error, "#8fb8de")
    for row in fixed[fixed["term"] == term].itertuples(index=False):
        rows["pooled"] = (row.estimate, row.conf_low, row.conf_high, "#1f4e79")
    return rows


def fixed_effects_section(fixed: pd.DataFrame, listwise: pd.DataFrame, by_imputation: pd.DataFrame,
                          truth: dict | None) -> str:
    """Section: the listwise and pooled fixed-effects table and the forest plot."""
    figure = forest_plot(fixed, listwise, by_imputation, truth)
    lead = ("The fit after dropping incomplete rows next to Rubin's rules over the imputed fits "
            "(riv: relative increase in variance due to missingness; fmi: fraction of missing information)"
            + ("; truth is the value the data were simulated with." if truth is not None else "."))
    caption = ("<p>Intervals are 95%: grey the listwise fit, light blue each imputation (estimate ± 1.96 SE), "
               "dark blue the pooled estimate (Student t with the pooled df)"
               + ("; dashed red the true value.</p>" if truth is not None else ".</p>"))
    plot = figure_png(figure, "forest plot of the fixed effects")
    body = "\n".join([table(fixed_effects_table(fixed, listwise, truth)), plot, caption])
    return section("Fixed effects", lead, body)


def by_imputation_section(by_imputation: pd.DataFrame, fixed: pd.DataFrame) -> str:
    """Section: each imputation's fixed-effect estimates, one row per imputation, and the pooled row."""
    terms = list(fixed["term"])
    wide = by_imputation.pivot(index="imputation", columns="term", values="estimate")[terms]
    wide.index = wide.index.astype(str)
    wide.loc["pooled"] = fixed.set_index("term")["estimate"][terms]
    wide = wide.rename_axis(index="imputation", columns=None).reset_index()
    return section("Per-imputation estimates",
                   "Each imputed data set's estimates; how much they differ is the between-imputation variance.",
                   table(wide))


def mertools_section(legacy: pd.DataFrame, fixed: pd.DataFrame) -> str:
    """Section: merTools' modelFixedEff table, asked for explicitly, beside Rubin's standard errors."""
    rubin = fixed.set_index("term")[["std_error", "df"]].rename(columns=lambda c: f"Rubin {c}")
    shown = legacy.join(rubin, on="term").rename(columns={"std_error": "merTools std_error", "df": "merTools df"})
    return section("merTools legacy table (not Rubin's rules)",
                   "merTools' modelFixedEff, for reproducing published merTools results only. It averages the "
                   "standard errors instead of the variances, divides the between-imputation variance by m "
                   "instead of m - 1 and adds it to an SE without a square root, so its standard errors are too "
                   "small whenever the imputations differ. Use the pooled table above for inference.",
                   table(shown))


def truth_random(truth: dict) -> dict[str, float]:
    """True random-effect parameters under broom.mixed names (sd__x, cor__x.y, sd__Observation)."""
    values = {f"sd__{name}": value for name, value in truth["random_effects"]["sd"].items()}
    values.update({f"cor__{pair}": value for pair, value in truth["random_effects"]["cor"].items()})
    values["sd__Observation"] = truth["sigma"]
    return values


def random_effects_section(varcorr: pd.DataFrame, random: pd.DataFrame, truth: dict | None) -> str:
    """Section: VarCorr averaged over imputations, and each parameter's mean and spread over imputations."""
    stats = random[["group", "term"]].copy()
    if truth is not None:
        stats["truth"] = random["term"].map(truth_random(truth))
    stats["mean over imputations"] = random["estimate"]
    stats["SD over imputations (a spread, not a standard error)"] = random["between_sd"]
    body = (table(varcorr) + "\n<p>Each standard deviation and correlation over the imputations:</p>\n"
            + table(stats))
    return section("Random effects",
                   "Standard deviations and correlations of the group-level effects and the residual, "
                   "averaged over the imputed fits as merTools' VarCorr does.", body)


def ranef_section(ranef: pd.DataFrame) -> str:
    """Section: how many conditional modes there are, and the first few levels."""
    levels = ranef.groupby("group", sort=False)["level"].nunique()
    counts = ", ".join(f"{count} levels of {html.escape(str(group))}" for group, count in levels.items())
    shown = ranef[ranef["level"].isin(ranef["level"].unique()[:RANEF_LEVELS_SHOWN])]
    body = (f"<p>{counts}; the first {RANEF_LEVELS_SHOWN} are shown, all are in <code>pooled/ranef.csv</code>.</p>\n"
            + table(shown))
    return section("Conditional modes",
                   "Each group's predicted random effects, averaged over all imputed fits, "
                   "with standard errors pooled by Rubin's rules from the conditional variances.", body)


def model_info_section(model_info: pd.DataFrame) -> str:
    """Section: one row per fit, fits that did not converge or are singular highlighted."""
    flagged = [not is_true(row.converged) or is_true(row.singular) for row in model_info.itertuples(index=False)]
    return section("Model information",
                   "Size, fit criteria and convergence of every fit; highlighted rows did not converge or are "
                   "singular.", table(model_info, flagged))
