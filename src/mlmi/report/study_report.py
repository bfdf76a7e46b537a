"""study.html: bias and coverage of each method across a study's scenarios, at a glance.

Points are the Monte Carlo estimates; bars are +-1.96 Monte Carlo standard errors; the
coverage panel has the nominal 95% line with its Monte Carlo band for the study's size.
"""
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlmi.report.figures import Z95, render
from mlmi.report.page import render_page, table
from mlmi.run.study import METHODS

#: One marker and line style per method, so the plots read in grey-scale too.
STYLES = {"complete": ("o", "-", "#1b9e77"), "listwise": ("s", "--", "#d95f02"), "pooled": ("D", ":", "#7570b3")}


def _panel(axes, summary: pd.DataFrame, value: str, mcse: str) -> None:
    """One term's measure per scenario, a row of points with MC intervals per method."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    for offset, method in zip((-0.2, 0.0, 0.2), METHODS):
        rows = summary[summary["method"] == method].set_index("scenario").reindex(scenarios)
        marker, line, colour = STYLES[method]
        axes.errorbar(np.arange(len(scenarios)) + offset, rows[value], yerr=Z95 * rows[mcse], fmt=marker,
                      linestyle="none", color=colour, label=method, capsize=2)
    axes.set_xticks(range(len(scenarios)), scenarios, rotation=30, ha="right", fontsize=8)


def measure_figure(summary: pd.DataFrame, value: str, mcse: str, reference: float, ylabel: str) -> Figure:
    """A grid of panels, one per term, of ``value`` by scenario and method, with a reference line."""
    terms = list(dict.fromkeys(summary["term"]))
    columns = min(3, len(terms))
    rows = int(np.ceil(len(terms) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    for i, term in enumerate(terms):
        axes = figure.add_subplot(rows, columns, i + 1)
        _panel(axes, summary[summary["term"] == term], value, mcse)
        axes.axhline(reference, color="black", linewidth=0.8)
        axes.set_title(term, fontsize=9)
        axes.set_ylabel(ylabel, fontsize=8)
    figure.axes[0].legend(fontsize=7)
    return figure


def coverage_figure(summary: pd.DataFrame) -> Figure:
    """Coverage of the 95% intervals, with the nominal line and its Monte Carlo band."""
    covered = summary.dropna(subset=["coverage"])
    figure = measure_figure(covered, "coverage", "coverage_mcse", 0.95, "coverage of 95% CI")
    n = covered["n_reps"].min()
    band = Z95 * np.sqrt(0.95 * 0.05 / n)
    for axes in figure.axes:
        axes.axhspan(0.95 - band, 0.95 + band, color="grey", alpha=0.2, linewidth=0)
    return figure


def write_study_report(path, summary: pd.DataFrame) -> None:
    """Write study.html: what was compared, bias and coverage plots, and the summary table."""
    shown = summary[["scenario", "method", "term", "n_reps", "bias", "bias_mcse", "rmse", "coverage",
                     "coverage_mcse", "coverage_n", "width", "fmi"]]
    render_page("study.html.j2", path, title="mlmi study", n_reps=int(summary["n_reps"].max()),
                bias=render(measure_figure(summary, "bias", "bias_mcse", 0.0, "bias"), "bias by scenario"),
                coverage=render(coverage_figure(summary), "coverage by scenario"), summary=table(shown))
