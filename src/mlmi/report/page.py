"""The kit of mlmi's pages (report.html, study.html): the Jinja2 environment of ``mlmi/report/templates``
(autoescape on), and tables as the templates draw them, their numbers formatted as R prints them.
"""
import re
from dataclasses import dataclass

import jinja2
import pandas as pd

from mlmi.report.console import P_FLOOR, p_value
from mlmi.run.io import write_text

#: Text columns with values longer than this many characters wrap within a minimum width (the warnings).
PROSE = 40
#: Columns of p-values, printed by ``p_text``.
P_COLUMNS = {"p", "p_value"}

#: The templates of mlmi/report/templates, found in an installed mlmi too; every value they show is escaped.
ENV = jinja2.Environment(loader=jinja2.PackageLoader("mlmi.report", "templates"), autoescape=True, trim_blocks=True,
                         lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
ENV.filters["anchor"] = lambda title: re.sub(r"[^a-z]+", "-", title.lower()).strip("-")


@dataclass(frozen=True)
class Table:
    """A table as the templates draw it: CSS classes, header rows of (label, span), body rows of (flagged,
    formatted cells), and the legend under it as (column names, explanation)."""

    classes: str
    header: list
    rows: list
    legend: list


def render_page(template: str, path, **context) -> None:
    """Write ``template`` (a file of ``mlmi/report/templates``) rendered with ``context`` to ``path``."""
    write_text(ENV.get_template(template).render(**context), path)


def number(value: float) -> str:
    """Four significant digits (``.4g``), but numbers from 100 to 1e6 keep one decimal so close AICs stay apart."""
    if pd.isna(value) or abs(value) < 1 or abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.{max(4, len(str(int(abs(value)))) + 1)}g}"


def p_text(p: float) -> str:
    """A p-value for the page: R's ``format.pval`` convention, ``< 2e-16`` below the printing limit, never 0."""
    return "—" if pd.isna(p) else p_value(p) if p < P_FLOOR else number(p)


def cell(value, p: bool = False) -> str:
    """One table cell as text: p-values by ``p_text``, other numbers by ``number``, missing as a dash."""
    if p:
        return p_text(value)
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return number(value) if isinstance(value, float) else str(value)


def leaf(name) -> str:
    """A column's own label: the last of a two-row header's labels."""
    return name[-1] if isinstance(name, tuple) else name


def table(frame: pd.DataFrame, flagged=None, legend: dict | None = None) -> Table:
    """A DataFrame as a ``Table`` (floats by ``number``, p-values by ``p_text``), ``flagged`` rows
    highlighted, and a legend of what each column is (``legend``: column to explanation).

    Text columns get a ``text-<position>`` class so the stylesheet aligns them left, numbers right;
    those with text longer than ``PROSE`` characters also get ``prose-<position>``, so they wrap
    within a readable width and the table stays within the page.
    """
    text, prose = [], []
    for i, (_, column) in enumerate(frame.items(), start=1):
        if not pd.api.types.is_numeric_dtype(column):
            text.append(f"text-{i}")
            if column.astype(str).str.len().max() > PROSE:
                prose.append(f"prose-{i}")
    header = [[(leaf(name), 1) for name in frame.columns]]
    if isinstance(frame.columns[0], tuple):       # a two-row header: the top labels span their columns
        tops = [name[0] for name in frame.columns]
        header.insert(0, [(top, sum(1 for _ in group)) for top, group in _runs(tops)])
    p_columns = [leaf(name) in P_COLUMNS for name in frame.columns]
    rows = [(bool(flag), [cell(value, p) for value, p in zip(row, p_columns)])
            for flag, row in zip(flagged if flagged is not None else [False] * len(frame),
                                 frame.itertuples(index=False))]
    return Table(" ".join(["dataframe", *text, *prose]), header, rows, column_legend(frame, legend or {}))


def _runs(labels: list) -> list[tuple[str, list]]:
    """Consecutive equal labels, grouped: (label, its run)."""
    runs = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1][1].append(label)
        else:
            runs.append((label, [label]))
    return runs


def column_legend(frame: pd.DataFrame, legend: dict) -> list[tuple[str, str]]:
    """What each column of ``frame`` is, from ``legend``; columns with the same explanation share an entry.

    A column ``legend`` does not know (one a newer pooled table added) is left out rather than stopping the report.
    """
    labels = {}
    for name in dict.fromkeys(map(leaf, frame.columns)):
        if name in legend:
            labels.setdefault(legend[name], []).append(name)
    return [(", ".join(names), text) for text, names in labels.items()]
