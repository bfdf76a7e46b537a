"""The mlmi report: one self-contained HTML page in place of the vignette's console output.

Everything the page shows is read from the files of design §4 (pooled tables, fits, data,
imputations, chains) and only formatted or drawn here, never re-estimated, so the page and the
CSVs always agree. The page needs no network: the stylesheet is inline and every figure is an
``<img>`` with a data: URI (PNG, or SVG where that is smaller). Figures tell their series apart
by marker and line style as well as colour, so they read in grey-scale print too.
"""
import base64
import html
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import yaml
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

from mlmi.console import P_FLOOR, fit_warnings, is_true, p_value
from mlmi.formula import parse_formula
from mlmi.io import read_json, write_bytes, write_text
from mlmi.missingness import summarize_missingness
from mlmi.failed_fits import left_out, left_out_warnings
from mlmi.summarize import random_effect_parameters

#: Figure width in inches; at DPI dots per inch it fills the page's column on a laptop screen.
WIDTH = 10.0
DPI = 100

#: The most frequent missingness patterns drawn (all are counted in the text).
PATTERNS_SHOWN = 20

#: What the imputation diagnostics say for data without a missing value.
NOTHING_IMPUTED = "No value was missing, so nothing was imputed."

#: Text columns with values longer than this many characters wrap within a minimum width (the warnings).
PROSE = 40

#: Columns of p-values, printed by ``p_text``.
P_COLUMNS = {"p", "p_value"}

#: What each column of the page's tables is, for the legend under each table (``table``'s ``legend``).
COLUMNS = {
    "term": "the model term, as lme4 names it",
    "truth": "the value the data were simulated with",
    "estimate": "the coefficient: the listwise fit's, or the mean over the pooled imputations",
    "SE": "standard error: lme4's for the listwise fit; Rubin's sqrt(ubar + (1 + 1/m) b) when pooled",
    "df": "Barnard-Rubin degrees of freedom, as mice::pool computes them",
    "95% CI low": "95% confidence interval, from Student t with df",
    "95% CI high": "95% confidence interval, from Student t with df",
    "p": "two-sided p-value of estimate / SE on Student t with df; below 2.2e-16 shown as < 2e-16, as R does",
    "riv": "relative increase in variance due to missingness, (1 + 1/m) b / ubar",
    "fmi": "fraction of missing information",
    "variable": "a column of the data",
    "fraction missing": "share of its values that are missing",
    "in the model": "yes when the model uses it",
    "grp": "grouping factor (Residual: the residual)",
    "group": "grouping factor (Residual: the residual)",
    "var1": "the random term (var1 and var2: the two terms of a correlation)",
    "var2": "the random term (var1 and var2: the two terms of a correlation)",
    "vcov": "variance, or covariance of var1 and var2",
    "sdcor": "standard deviation, or correlation of var1 and var2",
    "mean over imputations": "merTools' modelRandEffStats estimate, the mean over the pooled imputations",
    "SD over imputations": "the SD of the imputations' estimates: a spread, not a standard error (merTools' "
                           "std.error)",
    "imputation": "the fit: imputed data set k, or listwise (the fit after listwise deletion)",
    "n_obs": "rows the fit used",
    "n_levels": "number of grouping factors (merTools' n.lvls)",
    "n_groups": "number of groups (levels of the grouping factor)",
    "aic": "Akaike information criterion (from the REML log-likelihood under REML, as lme4)",
    "bic": "Bayesian information criterion (likewise)",
    "loglik": "log-likelihood (REML under REML)",
    "reml_criterion": "-2 x REML log-likelihood (lme4's REMLcrit)",
    "sigma": "residual standard deviation",
    "converged": "whether the optimizer converged and passed lme4's gradient check",
    "singular": "a variance at zero or a correlation at ±1 (lme4's isSingular); a singular fit converged",
    "warnings": "every warning of the fit",
    "pooled": "whether the fit is in the pooled tables",
    "statistic": "estimate / std_error",
    "merTools std_error": "merTools' standard error",
    "merTools df": "merTools' degrees of freedom",
    "Rubin std_error": "Rubin's rules' standard error (the pooled table's SE)",
    "Rubin df": "Barnard-Rubin degrees of freedom (the pooled table's df)",
    "seed": "the seed's use: master, or the job it seeds",
    "value": "the seed",
    "software": "Python, the platform, or a package",
    "version": "its version",
    "file": "an input of the run",
    "sha256": "its SHA-256 checksum",
    "level": "1: a value per row; 2: one value per cluster of the grouping factor",
    "in_model": "whether model.formula uses it",
    "imputed_by": "the imputation model and its predictors",
    "carries_model": "whether that model can reproduce the analysis model's structure for this variable "
                     "(random slopes, products, level 2)",
    "warning": "why it cannot, and the config change that fixes it",
    "parameter": "a parameter of the analysis model, drawn at each iteration of the multilevel sampler",
    "rhat": "rank-normalised split R-hat across the m chains (Vehtari et al. 2021; near 1 when they agree; "
            "above 1.01 deserves a longer imputation.burn_in)",
    "ess_bulk": "bulk effective sample size of the second halves of the chains together",
    "ess_tail": "tail (5% and 95% quantiles) effective sample size",
}

#: The random-effect parameters' names (broom.mixed's), for their table's legend.
RANDOM_COLUMNS = {**COLUMNS, "term": "sd__x: standard deviation of the random effect of x; cor__a.b: correlation of "
                                     "those of a and b; sd__Observation: the residual SD (broom.mixed's names)"}

#: How a true/false column of a table reads.
YES_NO = {True: "yes", False: "no"}

#: Jobs named in a warning that several jobs logged; the others are counted.
JOBS_NAMED = 4

#: Normal quantile of the 95% intervals drawn around per-imputation estimates and conditional modes.
Z95 = 1.959963984540054

POOLED_FILES = {
    "fixed": "fixed_effects.csv",
    "by_imputation": "fixed_effects_by_imputation.csv",
    "listwise": "listwise_fixed_effects.csv",
    "random": "random_effects.csv",
    "varcorr": "varcorr.csv",
    "ranef": "ranef.csv",
    "model_info": "model_info.csv",
}

#: The page's figures: file stem (as in results/<scenario>/figures/) to the alt text of its image.
FIGURES = {
    "missingness_patterns": "missingness patterns: one row per pattern, missing cells dark",
    "imputation_diagnostics": "observed and imputed distributions per imputed variable, and the imputation chains",
    "forest": "forest plot of the fixed effects: listwise, each imputation and pooled, with 95% intervals",
    "random_effects": "each random-effect SD and correlation per imputation, with the pooled mean",
    "caterpillar": "caterpillar plot of the pooled conditional modes with 95% intervals",
}

#: How each kind of series is drawn: marker and line style tell them apart without colour.
SERIES = {
    "observed": {"color": "black", "linestyle": "-", "linewidth": 2.4},
    "listwise": {"color": "#555555", "marker": "s", "markerfacecolor": "white", "linestyle": "none"},
    "imputation": {"color": "#4a7fb5", "marker": "o", "markersize": 4, "linestyle": "none"},
    "pooled": {"color": "black", "marker": "D", "linestyle": "none"},
    "pooled mean": {"color": "black", "linestyle": "-", "linewidth": 1.2},
    "truth": {"color": "#b03a2e", "linestyle": "--", "linewidth": 1.2},
}
IMPUTATION_LINES = ["--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 3))]
IMPUTATION_MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*"]
IMPUTATION_HATCHES = ["//", "\\\\", "xx", "..", "--", "++", "oo", "**"]
IMPUTATION_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.02rem; margin: 1.4rem 0 .3rem; }
p.lead { color: #555; margin-top: 0; }
nav { font-size: .9rem; margin: .6rem 0; }
nav a { margin-right: .9rem; }
ul.facts { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.6rem; margin: .4rem 0; }
ul.facts b { font-size: 1.15rem; }
code, pre { background: #f3f3f3; border-radius: 3px; }
code { padding: .1rem .3rem; }
pre { padding: .6rem; overflow-x: auto; font-size: .85rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { padding: .25rem .45rem; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f6f6f6; }
th[colspan] { text-align: center; border-bottom: 2px solid #ccc; }
td { white-space: nowrap; font-variant-numeric: tabular-nums; }
p.legend { font-size: .82rem; color: #555; margin: -.6rem 0 1rem; }
section { overflow-x: auto; }
tr.flagged td { background: #fde2e1; font-weight: 600; }
tr.flagged td:first-child { border-left: 4px solid #8a1c12; }
ul.warnings li { color: #8a1c12; }
p.ok { color: #1d6b2f; }
img { max-width: 100%; height: auto; display: block; margin: .4rem 0; }
div.side { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
div.side > div { flex: 1 1 24rem; }
details summary { cursor: pointer; font-weight: 600; margin: 1rem 0 .3rem; }
""" + "".join(  # table() tags each text column's position; those cells align left
    f"table.text-{i} td:nth-child({i}), table.text-{i} tr:last-child th:nth-child({i}) {{ text-align: left; }}\n"
    f"table.text-{i} td:nth-child({i}) {{ white-space: normal; }}\n"
    f"table.prose-{i} td:nth-child({i}) {{ min-width: 14rem; overflow-wrap: anywhere; }}\n"
    for i in range(1, 21))


@dataclass(frozen=True)
class Image:
    """One rendered figure: the PNG bytes for its file, and the page's ``<img>`` tag."""

    png: bytes
    tag: str


def write_report(path, *, pooled_dir, missing_path, fit_paths, listwise_fit_path, imputed_paths, formula: str,
                 scenario: str, chain_paths=(), truth_path=None, categorical=(), model_vars=None, logs=None,
                 provenance: dict | None = None, figure_paths: dict | None = None, models_path=None,
                 trace_paths=()) -> None:
    """Write the report page to ``path``, and its figures as PNG files to ``figure_paths``.

    Parameters
    ----------
    path : str or Path
        The HTML file to write.
    pooled_dir : str or Path
        Folder with the pooled tables of design §4 (``fixed_effects.csv`` and the rest).
    missing_path : str or Path
        ``data/missing.parquet``: the data with its missing values.
    fit_paths, listwise_fit_path : list of paths, path
        ``fits/imp_<k>.json`` in imputation order, and ``fits/listwise.json``.
    imputed_paths : list of paths
        ``imputations/imp_<k>.parquet`` in imputation order.
    formula, scenario : str
        The lme4 model formula and the scenario name, shown in the title.
    chain_paths : list of paths
        ``imputations/chains_<k>.csv``; empty when the imputations came from elsewhere.
    truth_path : str or Path, optional
        ``data/truth.json`` for simulated data; without it the page has no truth anywhere.
    categorical : iterable of str
        Variables imputed as categories: drawn as bars, not densities (non-numeric ones always are).
    model_vars : list of str, optional
        Columns the model uses, for the listwise-deletion row count; by default those named in ``formula``.
    logs : dict, optional
        Job logs, label (such as ``fit/1``) to path; their WARNING and ERROR lines join the warnings.
    provenance : dict, optional
        ``mlmi.provenance.describe_run``'s record; without it the page says provenance is not available.
    figure_paths : dict, optional
        Figure name (a key of ``FIGURES``) to the PNG file to write it to, for Snakemake's report.
    models_path : str or Path, optional
        ``imputations/models.csv`` (``mlmi.imputation_models``): what was imputed how; none for external imputations.
    trace_paths : list of paths
        ``imputations/trace_<k>.csv``: the multilevel sampler's draws of the analysis model's parameters
        (header only for miceforest), for the sampler's convergence.
    """
    tables = {key: pd.read_csv(Path(pooled_dir) / name) for key, name in POOLED_FILES.items()}
    legacy = Path(pooled_dir) / "mertools_fixed_effects.csv"
    data = pd.read_parquet(missing_path)
    parsed = parse_formula(formula)
    model_vars = parsed.variables(data.columns) if model_vars is None else model_vars
    truth = read_json(truth_path) if truth_path is not None else None
    imputed = [pd.read_parquet(p) for p in imputed_paths]
    chains = [pd.read_csv(p) for p in chain_paths]
    fits = [read_json(p) for p in fit_paths]
    summary = summarize_missingness(data, model_vars)
    variables = imputed_variables(data, imputed)
    images = {name: render(figure, FIGURES[name]) for name, figure in {
        "missingness_patterns": patterns_plot(summary["patterns"]),
        "imputation_diagnostics": imputation_plot(data, imputed, chains, variables, set(categorical)),
        "forest": forest_plot(tables["fixed"], tables["listwise"], tables["by_imputation"], truth, parsed.response),
        "random_effects": random_effects_plot(pooled_fits(fits, tables["model_info"]), read_json(listwise_fit_path),
                                              tables["random"], truth, parsed.response),
        "caterpillar": caterpillar_plot(tables["ranef"], parsed.response),
    }.items()}
    for name, figure_path in (figure_paths or {}).items():
        write_bytes(images[name].png, figure_path)
    warnings = gather_warnings(logged_warnings(logs or {}), tables["model_info"], tables["fixed"])
    sections = [
        warnings_section(warnings),
        fixed_effects_section(tables["fixed"], tables["listwise"], tables["by_imputation"], truth,
                              pd.read_csv(legacy) if legacy.exists() else None, images["forest"],
                              fits[0].get("factors", {})),  # fit records of mlmi before factors: none
        missingness_section(summary, model_vars, imputed, images["missingness_patterns"]),
        imputation_models_section(pd.read_csv(models_path, keep_default_na=False) if models_path else None,
                                  [pd.read_csv(p) for p in trace_paths]),
        imputation_section(variables, bool(chains), images["imputation_diagnostics"]),
        random_effects_section(tables["varcorr"], tables["random"], tables["ranef"], truth, images),
        model_info_section(tables["model_info"]),
        provenance_section(provenance),
    ]
    facts = key_facts(summary, tables["model_info"], len(imputed), len(warnings))
    write_text(page(scenario, formula, facts, sections), path)


def page(scenario: str, formula: str, facts: str, sections: list[str]) -> str:
    """The whole HTML document: title, formula, key facts, links to the sections, the sections."""
    title = f"mlmi report: {html.escape(scenario)}"
    links = " ".join(f'<a href="#{anchor}">{html.escape(name)}</a>'
                     for anchor, name in re.findall(r'<section id="([^"]+)">\n<h2>([^<]+)</h2>', "\n".join(sections)))
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        f"<p class=\"lead\">Linear mixed model <code>{html.escape(formula)}</code>, fitted on each imputed data "
        f"set and pooled with Rubin's rules, next to the fit after listwise deletion.</p>\n{facts}\n"
        f"<nav>{links}</nav>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def key_facts(summary: dict, model_info: pd.DataFrame, m: int, n_warnings: int) -> str:
    """The run at a glance: imputations (and how many pooled, if not all), rows before and after listwise
    deletion, fits that did not converge and singular fits (counted apart: a singular fit converged, and is
    pooled), warnings."""
    excluded = len(left_out(model_info))
    facts = [(m, "imputed data set", f", {m - excluded} pooled" if excluded else ""), (summary["n_rows"], "row", ""),
             (summary["rows_listwise"], "row", " after listwise deletion"),
             (sum(not is_true(value) for value in model_info["converged"]), "fit", " not converged"),
             (sum(is_true(value) for value in model_info["singular"]), "singular fit", ""),
             (n_warnings, "warning", "")]
    return '<ul class="facts">' + "".join(f"<li><b>{value}</b> {noun}{'' if value == 1 else 's'}{rest}</li>"
                                          for value, noun, rest in facts) + "</ul>"


def section(title: str, lead: str, body: str) -> str:
    """One titled section (with an anchor for the links at the top) and its one-line plain explanation."""
    anchor = re.sub(r"[^a-z]+", "-", title.lower()).strip("-")
    return (f'<section id="{anchor}">\n<h2>{html.escape(title)}</h2>\n<p class="lead">{html.escape(lead)}</p>\n'
            f"{body}\n</section>")


def number(value: float) -> str:
    """Four significant digits (``.4g``), but numbers from 100 to 1e6 keep one decimal so close AICs stay apart."""
    if pd.isna(value) or abs(value) < 1 or abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.{max(4, len(str(int(abs(value)))) + 1)}g}"


def table(frame: pd.DataFrame, flagged=None, legend: dict | None = None) -> str:
    """A DataFrame as an HTML table (text escaped, floats by ``number``, p-values by ``p_text``), ``flagged``
    rows highlighted, and under it a legend of what each column is (``legend``: column to explanation).

    Text columns get a ``text-<position>`` class so the stylesheet aligns them left, numbers right;
    those with text longer than ``PROSE`` characters also get ``prose-<position>``, so they wrap
    within a readable width and the table stays within the page. Column names may break after an
    underscore (``reml_criterion``), never inside a word.
    """
    text, prose = [], []
    for i, (_, column) in enumerate(frame.items(), start=1):
        if not pd.api.types.is_numeric_dtype(column):
            text.append(f"text-{i}")
            if column.astype(str).str.len().max() > PROSE:
                prose.append(f"prose-{i}")
    formatters = {name: p_text for name in frame.columns if leaf(name) in P_COLUMNS}
    markup = frame.to_html(index=False, float_format=number, na_rep="—", border=0, escape=True,
                           classes=text + prose, formatters=formatters)
    markup = re.sub(r"<th>([^<]*)</th>", lambda name: f"<th>{name[1].replace('_', '_<wbr>')}</th>", markup)
    if flagged is not None:
        head, body = markup.split("<tbody>")
        rows = body.split("<tr>")
        marked = [('<tr class="flagged">' if flag else "<tr>") + row for flag, row in zip(flagged, rows[1:])]
        markup = head + "<tbody>" + rows[0] + "".join(marked)
    return markup + (column_legend(frame, legend) if legend else "")


def leaf(name) -> str:
    """A column's own label: the last of a two-row header's labels."""
    return name[-1] if isinstance(name, tuple) else name


def p_text(p: float) -> str:
    """A p-value for the page: R's ``format.pval`` convention, ``< 2e-16`` below the printing limit, never 0."""
    return "—" if pd.isna(p) else p_value(p) if p < P_FLOOR else number(p)


def column_legend(frame: pd.DataFrame, legend: dict) -> str:
    """What each column of ``frame`` is, from ``legend``; columns with the same explanation share an entry.

    A column ``legend`` does not know (one a newer pooled table added) is left out rather than stopping the report.
    """
    labels = {}
    for name in dict.fromkeys(map(leaf, frame.columns)):
        if name in legend:
            labels.setdefault(legend[name], []).append(name)
    entries = [f"<b>{html.escape(', '.join(names))}</b>: {html.escape(text)}" for text, names in labels.items()]
    return f'<p class="legend">{"; ".join(entries)}.</p>'


def save(figure: Figure, kind: str) -> bytes:
    """The figure as PNG or SVG bytes, without timestamps, so the same results give the same page."""
    buffer = io.BytesIO()
    metadata = {"Software": None} if kind == "png" else {"Date": None, "Creator": None}
    with matplotlib.rc_context({"svg.hashsalt": "mlmi", "svg.fonttype": "path"}):
        figure.savefig(buffer, format=kind, dpi=DPI, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def render(figure: Figure, alt: str) -> Image:
    """The figure's PNG, and an ``<img>`` of whichever of PNG and SVG is smaller, as a data: URI."""
    png, svg = save(figure, "png"), save(figure, "svg")
    kind, content = ("svg+xml", svg) if len(svg) < len(png) else ("png", png)
    encoded = base64.b64encode(content).decode("ascii")
    return Image(png, f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{encoded}">')


def imputation_style(k: int) -> dict:
    """Colour, line style and marker of imputation k (1-based), distinct in grey-scale too."""
    return {"color": IMPUTATION_COLOURS[(k - 1) % len(IMPUTATION_COLOURS)],
            "linestyle": IMPUTATION_LINES[(k - 1) % len(IMPUTATION_LINES)],
            "marker": IMPUTATION_MARKERS[(k - 1) % len(IMPUTATION_MARKERS)]}


def units(response: str, term: str) -> str:
    """The unit of a coefficient or random effect of ``term`` on ``response``, for axis labels."""
    return f"{response} units" if term in ("(Intercept)", "Observation") else f"{response} per unit of {term}"


def legend_handle(style: dict) -> Line2D:
    """A legend entry drawn in ``style`` (a SERIES or imputation_style dict)."""
    return Line2D([], [], **style)


def logged_warnings(logs: dict) -> dict[str, list[str]]:
    """Every distinct WARNING, ERROR or CRITICAL message in job logs (``mlmi.logs`` format), in the order first
    logged, with the label of the log of each time it was logged.

    A message that starts with its job's own name (job ``fit/3`` logs ``3: ...``) is kept without it, so the
    same problem in several fits is one message. A listed log that does not exist has nothing to say.
    """
    pattern = re.compile(r"^\S+ \S+ (?:WARNING|ERROR|CRITICAL) \S+: (.*)$")
    found = {}
    for label, path in logs.items():
        if not Path(path).is_file():
            continue
        own = label.rsplit("/", 1)[-1] + ": "
        for match in map(pattern.match, Path(path).read_text(encoding="utf-8", errors="replace").splitlines()):
            if match:
                found.setdefault(match.group(1).removeprefix(own), []).append(label)
    return found


def logged_line(message: str, labels: list[str]) -> str:
    """One logged message as the report lists it: the jobs that logged it, and how often when more than once."""
    jobs = list(dict.fromkeys(labels))
    named = ", ".join(jobs[:JOBS_NAMED]) + (f" and {len(jobs) - JOBS_NAMED} other jobs" if len(jobs) > JOBS_NAMED
                                           else "")
    return f"{named}: {message}" + (f" (×{len(labels)})" if len(labels) > 1 else "")


def gather_warnings(logged: dict[str, list[str]], model_info: pd.DataFrame, fixed: pd.DataFrame) -> list[str]:
    """The results' own warnings (imputations left out of the pool first, fits, pooling), then each logged
    message (``logged_warnings``) once, unless it repeats one of them.

    A logged message repeats one when it, or its text after a leading "label: ", is part of a
    result warning (the fit and pool jobs log what model_info.csv and the pooled riv also say).
    """
    found = left_out_warnings(model_info) + fit_warnings(model_info, fixed)
    said = " ".join(found)
    return found + [logged_line(message, labels) for message, labels in logged.items()
                    if message not in said and message.split(": ", 1)[-1] not in said]


def warnings_section(warnings: list[str]) -> str:
    """Section: every warning in one list, or a plain statement that there are none."""
    body = ('<ul class="warnings">\n' + "\n".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "\n</ul>"
            if warnings else '<p class="ok">No warnings.</p>')
    return section("Warnings", "Problems met while imputing, fitting and pooling; read these first.", body)


def missingness_section(summary: dict, model_vars: list[str], imputed: list[pd.DataFrame], image: Image) -> str:
    """Section: fraction missing per variable, pattern count and plot, rows before and after imputation."""
    fractions = pd.DataFrame({
        "variable": list(summary["fraction_missing"]),
        "fraction missing": list(summary["fraction_missing"].values()),
        "in the model": ["yes" if name in model_vars else "" for name in summary["fraction_missing"]],
    })
    facts = (
        f"<ul>\n<li>Rows: {summary['n_rows']}</li>\n"
        f"<li>Rows after listwise deletion (no missing value in {html.escape(', '.join(model_vars))}): "
        f"{summary['rows_listwise']}</li>\n"
        f"<li>Rows after imputation: {len(imputed[0])} in each of the {len(imputed)} imputed data sets</li>\n"
        f"<li>Patterns of missingness in the data (the complete pattern included): {summary['n_patterns']}</li>\n"
        "</ul>"
    )
    shown = min(PATTERNS_SHOWN, summary["n_patterns"])
    caption = (f"<p>The {shown} most frequent patterns: each row is one combination of missing (dark) and observed "
               "(light) variables, labelled with how many rows have it.</p>")
    return section("Data and missingness",
                   "How much of the data is missing, in which combinations, and how many rows listwise deletion "
                   "would keep where imputation keeps them all.",
                   f'{facts}\n<div class="side">\n{table(fractions, legend=COLUMNS)}\n'
                   f'<div>{image.tag}\n{caption}</div>\n</div>')


def imputed_variables(data: pd.DataFrame, imputed: list[pd.DataFrame]) -> list[str]:
    """Columns with missing values that the imputed data sets filled in."""
    return [c for c in data.columns if data[c].isna().any() and not imputed[0][c].isna().any()]


def is_categorical(column: pd.Series, categorical: set[str]) -> bool:
    """Whether a variable is drawn as category bars: named as categorical, or not a number."""
    return column.name in categorical or not pd.api.types.is_numeric_dtype(column) or column.dtype == bool


def imputation_plot(data: pd.DataFrame, imputed: list[pd.DataFrame], chains: list[pd.DataFrame],
                    variables: list[str], categorical: set[str]) -> Figure:
    """One row per imputed variable: observed vs imputed distribution, then the chains' mean and SD."""
    if not variables:
        figure = Figure(figsize=(WIDTH, 0.6))
        figure.text(0.5, 0.5, NOTHING_IMPUTED, ha="center", va="center")
        return figure
    columns = 3 if chains else 1
    figure = Figure(figsize=(WIDTH, 2.5 * len(variables) + 0.7), layout="constrained")
    axes = figure.subplots(len(variables), columns, squeeze=False)
    for row, variable in zip(axes, variables):
        missing = data[variable].isna().to_numpy()
        draws = [frame.loc[missing, variable] for frame in imputed]
        if is_categorical(data[variable], categorical):
            category_bars(row[0], data[variable].dropna(), draws)
        else:
            densities(row[0], data[variable].dropna().astype(float), [d.astype(float) for d in draws])
        row[0].set_title(f"{variable}: observed vs imputed", loc="left", fontsize=10)
        if chains:
            chain_lines(row[1], row[2], variable, chains)
    handles = [legend_handle(SERIES["observed"])] + [legend_handle(imputation_style(k))
                                                     for k in range(1, len(imputed) + 1)]
    labels = ["observed"] + [f"imputation {k}" for k in range(1, len(imputed) + 1)]
    figure.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), fontsize=9)
    return figure


def densities(ax, observed: pd.Series, draws: list[pd.Series]) -> None:
    """Kernel densities of the observed values and of each imputation's imputed values."""
    grid = np.linspace(min(observed.min(), *(d.min() for d in draws)),
                       max(observed.max(), *(d.max() for d in draws)), 200)
    density = gaussian_kde(observed)(grid)
    ax.fill_between(grid, density, color="#dddddd")
    ax.plot(grid, density, **SERIES["observed"])
    for k, values in enumerate(draws, start=1):
        if values.nunique() > 1:
            ax.plot(grid, gaussian_kde(values)(grid), markevery=25, markersize=4, **imputation_style(k))
        else:
            ax.axvline(values.iloc[0], **imputation_style(k))
    ax.set_xlabel(f"{observed.name} (data units)")
    ax.set_ylabel("density")


def category_bars(ax, observed: pd.Series, draws: list[pd.Series]) -> None:
    """Proportion of each category among observed values and among each imputation's imputed values."""
    categories = sorted(set(observed) | {value for d in draws for value in d})
    width = 0.8 / (len(draws) + 1)
    positions = np.arange(len(categories))
    shares = observed.value_counts(normalize=True).reindex(categories, fill_value=0)
    ax.bar(positions - 0.4 + width / 2, shares, width, color="#444444", label="observed")
    for k, values in enumerate(draws, start=1):
        shares = values.value_counts(normalize=True).reindex(categories, fill_value=0)
        ax.bar(positions - 0.4 + width * (k + 0.5), shares, width, facecolor="white",
               edgecolor=imputation_style(k)["color"], hatch=IMPUTATION_HATCHES[(k - 1) % len(IMPUTATION_HATCHES)])
    ax.set_xticks(positions, [str(c) for c in categories])
    ax.set_xlabel(f"{observed.name} (category)")
    ax.set_ylabel("proportion of values")


def chain_lines(mean_ax, sd_ax, variable: str, chains: list[pd.DataFrame]) -> None:
    """The imputed cells' mean and SD at each MICE iteration, one line per imputation (chain)."""
    for k, chain in enumerate(chains, start=1):
        rows = chain[chain["variable"] == variable]
        mean_ax.plot(rows["iteration"], rows["mean"], markersize=4, **imputation_style(k))
        sd_ax.plot(rows["iteration"], rows["sd"], markersize=4, **imputation_style(k))
    for ax, what in ((mean_ax, "mean"), (sd_ax, "SD")):
        ax.set_xlabel("iteration (0 = initial fill)")
        ax.set_ylabel(f"{what} of imputed values")
        ax.set_title(f"{variable}: chain {what}", loc="left", fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)


def imputation_section(variables: list[str], has_chains: bool, image: Image) -> str:
    """Section: per imputed variable, distributions and (when mlmi imputed) the chains."""
    chains = ("<p>Right: the mean and SD of the imputed values at each iteration of each chain. Converged chains "
              "mix and show no trend over the last iterations.</p>" if has_chains else
              "<p>The imputations came from elsewhere (<code>imputation.method: external</code>), so there are "
              "no imputation chains to show.</p>")
    shown = (f"<p>Imputed variables: {html.escape(', '.join(variables))}. Left: the observed values (solid, "
             "shaded) against the values each imputation filled in (density for numbers, bars for categories); "
             f"similar shapes are expected under MCAR.</p>\n{chains}" if variables else f"<p>{NOTHING_IMPUTED}</p>")
    body = f"{shown}\n{image.tag}"
    return section("Imputation diagnostics",
                   "Whether the imputed values look plausible next to the observed ones, and whether the "
                   "imputation chains settled.", body)


def imputation_models_section(models: pd.DataFrame | None, traces: list[pd.DataFrame]) -> str:
    """Section: each incomplete variable's level, imputation model and whether it carries the analysis model;
    for the multilevel sampler, its chains' R-hat and ESS and the traces of the model's parameters."""
    if models is None:
        body = ("<p>The imputations came from elsewhere (<code>imputation.method: external</code>): mlmi cannot "
                "say how they were made. Check that the imputation model held the analysis model's random slopes, "
                "products and level-2 variables.</p>")
    elif models.empty:
        body = f"<p>{NOTHING_IMPUTED}</p>"
    else:
        shown = models.replace({"in_model": YES_NO, "carries_model": YES_NO})
        body = table(shown, legend=COLUMNS) + sampler_block([t for t in traces if not t.empty])
    return section("Imputation models",
                   "How each incomplete variable was imputed, and whether that imputation can carry the analysis "
                   "model: an imputation model simpler than the analysis model biases the pooled estimates towards "
                   "what it assumed (design §9).", body)


def sampler_block(traces: list[pd.DataFrame]) -> str:
    """The multilevel sampler's convergence across the m chains: R-hat and ESS per parameter, and the traces."""
    if not traces:
        return ""
    from mlmi.multilevel import chain_diagnostics  # ArviZ: paid only by a report of the multilevel method

    diagnostics = chain_diagnostics(traces)
    image = render(trace_plot(traces), "traces of the analysis model's parameters in each imputation's chain")
    return ("<h3>Convergence of the multilevel sampler</h3>\n<p>Each imputation is the last state of its own "
            "chain. Over the second half of the m chains together:</p>\n" + table(diagnostics, legend=COLUMNS)
            + image.tag)


def trace_plot(traces: list[pd.DataFrame]) -> Figure:
    """One panel per parameter of the analysis model: its draws at each kept iteration, a line per chain."""
    parameters = list(dict.fromkeys(traces[0]["parameter"]))
    figure = Figure(figsize=(WIDTH, 1.9 * math.ceil(len(parameters) / 3)), layout="constrained")
    for ax, parameter in zip(panel_grid(figure, len(parameters), 3), parameters):
        for k, trace in enumerate(traces, start=1):
            rows = trace[trace["parameter"] == parameter]
            ax.plot(rows["iteration"], rows["value"], linewidth=0.8, **{**imputation_style(k), "marker": None})
        ax.set_title(parameter, loc="left", fontsize=10)
        ax.set_xlabel("iteration")
    return figure


def patterns_plot(patterns: pd.DataFrame) -> Figure:
    """The most frequent missingness patterns as a grid: one row per pattern, missing cells dark."""
    shown = patterns.head(PATTERNS_SHOWN)
    mask = shown.drop(columns="n_rows").to_numpy(dtype=float)
    figure = Figure(figsize=(WIDTH * 0.6, 0.26 * len(shown) + 1.3), layout="constrained")
    ax = figure.subplots()
    ax.pcolormesh(mask, cmap=ListedColormap(["#e4e4e4", "#222222"]), vmin=0, vmax=1, edgecolors="white",
                  linewidth=1.5)
    columns = list(shown.columns.drop("n_rows"))
    ax.set_xticks(np.arange(len(columns)) + 0.5, columns, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(shown)) + 0.5, [f"{n} row{'s' if n != 1 else ''}" for n in shown["n_rows"]])
    ax.invert_yaxis()
    ax.set_xlabel("variable (dark: missing, light: observed)")
    ax.set_ylabel("pattern (rows that have it)")
    ax.tick_params(length=0)
    return figure


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


def interval_rows(term: str, fixed: pd.DataFrame, listwise: pd.DataFrame,
                  by_imputation: pd.DataFrame) -> list[tuple[str, str, float, float, float]]:
    """(label, series, estimate, low, high) per plotted row of one term, top to bottom, straight from the CSVs."""
    rows = [("listwise", "listwise", r.estimate, r.conf_low, r.conf_high)
            for r in listwise[listwise["term"] == term].itertuples(index=False)]
    rows += [(f"imputation {r.imputation}", "imputation", r.estimate, r.estimate - Z95 * r.std_error,
              r.estimate + Z95 * r.std_error)
             for r in by_imputation[by_imputation["term"] == term].itertuples(index=False)]
    rows += [("pooled", "pooled", r.estimate, r.conf_low, r.conf_high)
             for r in fixed[fixed["term"] == term].itertuples(index=False)]
    return rows


def panel_grid(figure: Figure, n: int, columns: int, **options):
    """``n`` axes in rows of ``columns`` (spare cells hidden), in reading order."""
    rows = math.ceil(n / columns)
    axes = figure.subplots(rows, columns, squeeze=False, **options).ravel()
    for spare in axes[n:]:
        spare.set_visible(False)
    return axes[:n]


def forest_plot(fixed: pd.DataFrame, listwise: pd.DataFrame, by_imputation: pd.DataFrame, truth: dict | None,
                response: str) -> Figure:
    """One panel per term: 95% intervals of the listwise fit, each imputation and the pooled estimate; truth."""
    columns = min(3, len(fixed))
    n_rows = len(interval_rows(fixed["term"].iloc[0], fixed, listwise, by_imputation))
    figure = Figure(figsize=(WIDTH, math.ceil(len(fixed) / columns) * (0.22 * n_rows + 1.0) + 0.5),
                    layout="constrained")
    for ax, term in zip(panel_grid(figure, len(fixed), columns, sharey=True), fixed["term"]):
        rows = interval_rows(term, fixed, listwise, by_imputation)
        for y, (_, series, estimate, low, high) in enumerate(rows):
            ax.errorbar(estimate, y, xerr=[[estimate - low], [high - estimate]], capsize=2, **SERIES[series])
        if truth is not None and term in truth["fixed_effects"]:
            ax.axvline(truth["fixed_effects"][term], **SERIES["truth"])
        ax.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_title(term, loc="left", fontsize=10)
        ax.set_xlabel(f"estimate ({units(response, term)})", fontsize=8)
        ax.grid(axis="x", color="#eeeeee")
    shown = ["listwise", "imputation", "pooled"] + (["truth"] if truth is not None else [])
    labels = {"imputation": "each imputation (± 1.96 SE)"}
    figure.legend([legend_handle(SERIES[s]) for s in shown], [labels.get(s, s) for s in shown],
                  loc="outside upper center", ncols=len(shown), fontsize=9)
    return figure


def fixed_effects_section(fixed: pd.DataFrame, listwise: pd.DataFrame, by_imputation: pd.DataFrame,
                          truth: dict | None, legacy: pd.DataFrame | None, image: Image, factors: dict) -> str:
    """Section: listwise vs pooled table, reference levels, forest plot, per-imputation estimates, merTools'."""
    lead = ("The fit after dropping incomplete rows next to Rubin's rules over the imputed fits "
            "(riv: relative increase in variance due to missingness; fmi: fraction of missing information)"
            + ("; truth is the value the data were simulated with." if truth is not None else "."))
    caption = ("<p>Intervals are 95%: hollow squares the listwise fit, circles each imputation (estimate ± 1.96 SE), "
               "black diamonds the pooled estimate (Student t with the pooled df)"
               + ("; the dashed line is the true value.</p>" if truth is not None else ".</p>"))
    parts = [table(fixed_effects_table(fixed, listwise, truth), legend=COLUMNS), factors_note(factors), image.tag,
             caption,
             "<h3>Per-imputation estimates</h3>",
             "<p>Each imputed data set's estimates; how much they differ is the between-imputation variance.</p>",
             table(by_imputation_table(by_imputation, fixed), legend={
                 "imputation": "imputed data set k; pooled: the mean over the pooled imputations",
                 **{term: "the term's estimate in that data set" for term in fixed["term"]}})]
    if legacy is not None:
        parts.append(mertools_block(legacy, fixed))
    return section("Fixed effects", lead, "\n".join(parts))


def factors_note(factors: dict) -> str:
    """The categorical predictors' reference levels, which the term names alone do not show."""
    if not factors:
        return ""
    items = [f"<li><code>{html.escape(name)}</code>: "
             + (f"reference <b>{html.escape(factor['reference'])}</b>" if factor["reference"] is not None
                else "not treatment-coded")
             + f" (levels {html.escape(', '.join(factor['levels']))})</li>" for name, factor in factors.items()]
    return ("<p>Categorical predictors are treatment-coded as R's <code>factor</code> is: a term named by the "
            "factor and a level is that level's difference from the reference level.</p><ul>"
            + "".join(items) + "</ul>")


def by_imputation_table(by_imputation: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """Each imputation's fixed-effect estimates, one row per imputation, and the pooled row."""
    terms = list(fixed["term"])
    wide = by_imputation.pivot(index="imputation", columns="term", values="estimate")[terms]
    wide.index = wide.index.astype(str)
    wide.loc["pooled"] = fixed.set_index("term")["estimate"][terms]
    return wide.rename_axis(index="imputation", columns=None).reset_index()


def mertools_block(legacy: pd.DataFrame, fixed: pd.DataFrame) -> str:
    """merTools' modelFixedEff table, asked for explicitly, beside Rubin's standard errors."""
    rubin = fixed.set_index("term")[["std_error", "df"]].rename(columns=lambda c: f"Rubin {c}")
    shown = legacy.join(rubin, on="term").rename(columns={"std_error": "merTools std_error", "df": "merTools df"})
    return ("<h3>merTools legacy table (not Rubin's rules)</h3>\n<p>merTools' modelFixedEff, for reproducing "
            "published merTools results only. It averages the standard errors instead of the variances, divides the "
            "between-imputation variance by m instead of m - 1 and adds it to an SE without a square root, so its "
            "standard errors are too small whenever the imputations differ. Use the pooled table above for "
            f"inference.</p>\n{table(shown, legend=COLUMNS)}")


def random_values(record: dict) -> dict[str, float]:
    """A fit's (or the truth's) SDs, correlations and residual SD by broom.mixed term name."""
    return {row["term"]: row["estimate"] for row in random_effect_parameters(record)}


def pooled_fits(fits: list[dict], model_info: pd.DataFrame) -> dict[str, dict]:
    """The fit records (in imputation order) that were pooled, by imputation label."""
    excluded = left_out(model_info)
    return {str(k): fit for k, fit in enumerate(fits, start=1) if str(k) not in excluded}


def random_effects_plot(fits: dict[str, dict], listwise: dict, random: pd.DataFrame, truth: dict | None,
                        response: str) -> Figure:
    """One panel per random-effect parameter: listwise, each pooled imputation, the pooled mean and the truth."""
    values = [random_values(fit) for fit in fits.values()]
    figure = Figure(figsize=(WIDTH, 3.0), layout="constrained")
    for ax, row in zip(panel_grid(figure, len(random), len(random)), random.itertuples(index=False)):
        ax.plot([0], [random_values(listwise)[row.term]], **SERIES["listwise"])
        ax.plot(range(1, len(fits) + 1), [v[row.term] for v in values], **SERIES["imputation"])
        ax.axhline(row.estimate, **SERIES["pooled mean"])
        if truth is not None:
            ax.axhline(random_values(truth)[row.term], **SERIES["truth"])
        ax.set_xticks(range(len(fits) + 1), ["listwise", *fits], fontsize=8)
        ax.set_xlim(-0.6, len(fits) + 0.5)
        ax.set_xlabel("imputation")
        ax.set_ylabel("correlation" if row.term.startswith("cor__")
                      else f"SD ({units(response, row.term.removeprefix('sd__'))})")
        ax.set_title(row.term, loc="left", fontsize=9)
    shown = ["listwise", "imputation", "pooled mean"] + (["truth"] if truth is not None else [])
    figure.legend([legend_handle(SERIES[s]) for s in shown], shown, loc="outside upper center", ncols=len(shown),
                  fontsize=9)
    return figure


def caterpillar_plot(ranef: pd.DataFrame, response: str) -> Figure:
    """One panel per random term: every level's pooled conditional mode with its 95% interval, ranked."""
    terms = list(ranef["term"].unique())
    figure = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    for ax, term in zip(panel_grid(figure, len(terms), len(terms)), terms):
        rows = ranef[ranef["term"] == term].sort_values("estimate")
        ranks = np.arange(1, len(rows) + 1)
        ax.errorbar(ranks, rows["estimate"], yerr=Z95 * rows["std_error"], fmt="o", markersize=2.5, color="black",
                    ecolor="#999999", elinewidth=0.8)
        ax.axhline(0, color="#555555", linestyle=":", linewidth=1)
        ax.set_xlabel(f"{rows['group'].iloc[0]} levels, ranked by conditional mode")
        ax.set_ylabel(f"conditional mode ({units(response, term)})")
        ax.set_title(term, loc="left", fontsize=10)
    return figure


def random_effects_section(varcorr: pd.DataFrame, random: pd.DataFrame, ranef: pd.DataFrame, truth: dict | None,
                           images: dict[str, Image]) -> str:
    """Section: VarCorr, the parameters' mean and spread over imputations, their plot, and the caterpillar plot."""
    stats = random[["group", "term"]].copy()
    if truth is not None:
        stats["truth"] = random["term"].map(random_values(truth))
    stats["mean over imputations"] = random["estimate"]
    stats["SD over imputations"] = random["between_sd"]
    levels = ranef.groupby("group", sort=False)["level"].nunique()
    counts = ", ".join(f"{count} levels of {html.escape(str(group))}" for group, count in levels.items())
    body = "\n".join([
        "<h3>VarCorr (mean over imputations)</h3>", table(varcorr, legend=COLUMNS),
        "<h3>Each standard deviation and correlation over the imputations</h3>", table(stats, legend=RANDOM_COLUMNS),
        images["random_effects"].tag,
        "<p>Hollow square: the listwise fit; circles: each imputation; solid line: the mean over imputations"
        + ("; dashed line: the true value.</p>" if truth is not None else ".</p>"),
        "<h3>Conditional modes</h3>",
        f"<p>{counts}: each level's predicted random effect, averaged over all imputed fits, with a 95% interval "
        "from the Rubin-pooled conditional variance. Every value is in <code>pooled/ranef.csv</code>.</p>",
        images["caterpillar"].tag,
    ])
    return section("Random effects",
                   "How much groups differ: standard deviations and correlations of the group-level effects and the "
                   "residual, averaged over the imputed fits as merTools' VarCorr does, and each group's effect.", body)


def flagged_fits(model_info: pd.DataFrame) -> list[bool]:
    """Per fit, whether it did not converge or is singular."""
    return [not is_true(row.converged) or is_true(row.singular) for row in model_info.itertuples(index=False)]


def model_info_section(model_info: pd.DataFrame) -> str:
    """Section: one row per fit, fits that did not converge or are singular highlighted."""
    return section("Model information",
                   "Size, fit criteria and convergence of every fit; highlighted rows (bold, marked at the left) "
                   "did not converge or are singular.", table(model_info, flagged_fits(model_info), COLUMNS))


def flatten(record: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested mapping as (dotted key, value) rows, for a two-column table."""
    rows = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        rows += flatten(value, f"{name} ") if isinstance(value, dict) else [(name, value)]
    return rows


def provenance_section(provenance: dict | None) -> str:
    """Section: config as run (YAML), seeds, versions, input checksums, run time; or that there is none."""
    lead = "What produced these results, to re-run and verify them."
    if provenance is None:
        return section("Provenance", lead, "<p>Provenance is not available for this run.</p>")
    body = "\n".join([
        "<details><summary>Config as run (YAML; click to show)</summary>",
        f"<pre>{html.escape(yaml.safe_dump(provenance['config'], sort_keys=False, allow_unicode=True))}</pre>",
        "</details>",
        "<h3>Seeds</h3>", table(pd.DataFrame(flatten(provenance["seeds"]), columns=["seed", "value"]), legend=COLUMNS),
        "<h3>Versions</h3>",
        table(pd.DataFrame(flatten(provenance["versions"]), columns=["software", "version"]), legend=COLUMNS),
        "<h3>Input checksums (SHA-256)</h3>",
        table(pd.DataFrame(list(provenance["inputs"].items()), columns=["file", "sha256"]), legend=COLUMNS),
        f"<p>Run time: {provenance['run_seconds']:.1f} s, the jobs' wall-clock time summed from Snakemake's "
        "benchmark files.</p>",
    ])
    return section("Provenance", lead, body)
