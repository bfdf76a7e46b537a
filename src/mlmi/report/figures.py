"""The report's figures (matplotlib), drawn from the results only, and rendered as PNG bytes and data: URIs.

Figures tell their series apart by marker and line style as well as colour, so they read in grey-scale print
too. ``render`` saves without timestamps, so the same results give the same page.
"""
import base64
import io
import math
import multiprocessing
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mlmi.fit.record import FitRecord
from mlmi.pool.summarize import true_random_value

#: Figure width in inches; at DPI dots per inch it fills the page's column on a laptop screen.
WIDTH = 10.0
DPI = 100

#: Grid points of a kernel density evaluated at once (each against every value).
KDE_CHUNK = 25
#: The most frequent missingness patterns drawn (all are counted in the text).
PATTERNS_SHOWN = 20

#: What the imputation diagnostics say for data without a missing value.
NOTHING_IMPUTED = "No value was missing, so nothing was imputed."

#: Normal quantile of the 95% intervals drawn around per-imputation estimates and conditional modes.
Z95 = 1.959963984540054

#: The alt text of each figure of the page (``mlmi.run.layout.FIGURES`` names them).
ALT = {
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


@dataclass(frozen=True)
class Image:
    """One rendered figure: the PNG bytes for its file, its alt text, and the data: URI the page shows."""

    png: bytes
    alt: str
    uri: str


def save(figure: Figure) -> bytes:
    """The figure as PNG bytes, without a timestamp, so the same results give the same page."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def render(figure: Figure, alt: str) -> Image:
    """The figure's PNG, for its file and as the data: URI of the page's ``<img>``. (An SVG of these figures, their
    text drawn as paths, came out larger than the PNG for every figure of the default run, and drawing it doubled
    the report job's time.)"""
    png = save(figure)
    return Image(png, alt, f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}")


def render_all(drawn: dict, processes: int = 1) -> dict:
    """``render`` of each figure of ``drawn`` (name of ``ALT`` to figure), name to Image, by up to ``processes``
    processes at once: drawing the figures is most of the report job, on every run's critical path, and they
    are independent. The workers are forked from this process, so each has the figures as they are (nothing is
    pickled but the PNGs coming back), and the images are the same bytes whatever the number of processes. Only on
    Linux: macOS's system libraries are not safe to use in a forked child, and elsewhere there is no fork."""
    if processes <= 1 or len(drawn) <= 1 or not sys.platform.startswith("linux"):
        return {name: render(figure, ALT[name]) for name, figure in drawn.items()}
    _FORKED.update(drawn)
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, len(drawn))) as pool:
            images = pool.map(_render_forked, list(drawn), chunksize=1)
    finally:
        _FORKED.clear()
    return dict(zip(drawn, images))


#: The figures ``render_all`` hands to the processes it forks, by name (empty otherwise).
_FORKED: dict = {}


def _render_forked(name: str) -> Image:
    """``render`` of the figure ``name`` in a process forked by ``render_all``."""
    return render(_FORKED[name], ALT[name])


def imputation_style(k: int) -> dict:
    """Colour, line style and marker of imputation k (1-based), distinct in grey-scale too."""
    return {"color": IMPUTATION_COLOURS[(k - 1) % len(IMPUTATION_COLOURS)],
            "linestyle": IMPUTATION_LINES[(k - 1) % len(IMPUTATION_LINES)],
            "marker": IMPUTATION_MARKERS[(k - 1) % len(IMPUTATION_MARKERS)]}


def units(response: str, term: str, link_scale: str | None = None) -> str:
    """The unit of a coefficient or random effect of ``term`` on ``response``, for axis labels; a GLMM's are on its
    link's scale (``link_scale``: ``log odds``, ``log rate``, ``probit``)."""
    measure = f"{response} units" if link_scale is None else f"{link_scale} of {response}"
    return measure if term in ("(Intercept)", "Observation") else f"{measure.removesuffix(' units')} per unit of {term}"


def legend_handle(style: dict) -> Line2D:
    """A legend entry drawn in ``style`` (a SERIES or imputation_style dict)."""
    return Line2D([], [], **style)


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
    density = kernel_density(observed, grid)
    ax.fill_between(grid, density, color="#dddddd")
    ax.plot(grid, density, **SERIES["observed"])
    for k, values in enumerate(draws, start=1):
        if values.nunique() > 1:
            ax.plot(grid, kernel_density(values, grid), markevery=25, markersize=4, **imputation_style(k))
        else:
            ax.axvline(values.iloc[0], **imputation_style(k))
    ax.set_xlabel(f"{observed.name} (data units)")
    ax.set_ylabel("density")


def kernel_density(values: pd.Series, grid: np.ndarray) -> np.ndarray:
    """The Gaussian kernel density estimate of ``values`` at ``grid`` with Scott's bandwidth, as
    ``scipy.stats.gaussian_kde(values)(grid)`` computes it (to rounding; tests/test_report.py), without the ~0.5 s
    that importing scipy.stats adds to every report job."""
    x = np.asarray(values, dtype=float)
    bandwidth = np.std(x, ddof=1) * len(x) ** (-1 / 5)
    sums = np.concatenate([np.exp(-0.5 * ((part[:, None] - x[None, :]) / bandwidth) ** 2).sum(axis=1)
                           for part in np.array_split(grid, max(1, len(grid) // KDE_CHUNK))])  # memory: chunk x n
    return sums / (len(x) * bandwidth * np.sqrt(2 * np.pi))


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
                response: str, link_scale: str | None = None) -> Figure:
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
        ax.set_xlabel(f"estimate ({units(response, term, link_scale)})", fontsize=8)
        ax.grid(axis="x", color="#eeeeee")
    shown = ["listwise", "imputation", "pooled"] + (["truth"] if truth is not None else [])
    labels = {"imputation": "each imputation (± 1.96 SE)"}
    figure.legend([legend_handle(SERIES[s]) for s in shown], [labels.get(s, s) for s in shown],
                  loc="outside upper center", ncols=len(shown), fontsize=9)
    return figure


def random_values(parameters: list[dict]) -> dict[tuple[str, str], float]:
    """A fit's (``FitRecord.random_parameters``) or the truth's (``mlmi.pool.summarize.truth_parameters``) SDs,
    correlations and residual SD by group and broom.mixed term name."""
    return {(row["group"], row["term"]): row["estimate"] for row in parameters}


def random_effects_plot(fits: dict[str, FitRecord], listwise: FitRecord, random: pd.DataFrame, truth: dict | None,
                        response: str, link_scale: str | None = None) -> Figure:
    """One panel per random-effect parameter: listwise, each pooled imputation, the pooled mean and the truth."""
    values = [random_values(fit.random_parameters) for fit in fits.values()]
    several = random.loc[random["group"] != "Residual", "group"].nunique() > 1  # a GLMM has no Residual row
    figure = Figure(figsize=(WIDTH, 3.0), layout="constrained")
    for ax, row in zip(panel_grid(figure, len(random), len(random)), random.itertuples(index=False)):
        key = (row.group, row.term)
        ax.plot([0], [random_values(listwise.random_parameters)[key]], **SERIES["listwise"])
        ax.plot(range(1, len(fits) + 1), [v[key] for v in values], **SERIES["imputation"])
        ax.axhline(row.estimate, **SERIES["pooled mean"])
        true = None if truth is None else true_random_value(truth, *key)
        if true is not None:
            ax.axhline(true, **SERIES["truth"])
        ax.set_xticks(range(len(fits) + 1), ["listwise", *fits], fontsize=8)
        ax.set_xlim(-0.6, len(fits) + 0.5)
        ax.set_xlabel("imputation")
        ax.set_ylabel("correlation" if row.term.startswith("cor__")
                      else f"SD ({units(response, row.term.removeprefix('sd__'), link_scale)})")
        ax.set_title(f"{row.term} ({row.group})" if several else row.term, loc="left", fontsize=9)
    shown = ["listwise", "imputation", "pooled mean"] + (["truth"] if truth is not None else [])
    figure.legend([legend_handle(SERIES[s]) for s in shown], shown, loc="outside upper center", ncols=len(shown),
                  fontsize=9)
    return figure


def caterpillar_plot(ranef: pd.DataFrame, response: str, link_scale: str | None = None) -> Figure:
    """One panel per grouping factor and random term: every level's pooled conditional mode with its 95%
    interval, ranked."""
    panels = list(dict.fromkeys(zip(ranef["group"], ranef["term"])))
    figure = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    for ax, (group, term) in zip(panel_grid(figure, len(panels), len(panels)), panels):
        rows = ranef[(ranef["group"] == group) & (ranef["term"] == term)].sort_values("estimate")
        ranks = np.arange(1, len(rows) + 1)
        ax.errorbar(ranks, rows["estimate"], yerr=Z95 * rows["std_error"], fmt="o", markersize=2.5, color="black",
                    ecolor="#999999", elinewidth=0.8)
        ax.axhline(0, color="#555555", linestyle=":", linewidth=1)
        ax.set_xlabel(f"{rows['group'].iloc[0]} levels, ranked by conditional mode")
        ax.set_ylabel(f"conditional mode ({units(response, term, link_scale)})")
        ax.set_title(term, loc="left", fontsize=10)
    return figure
