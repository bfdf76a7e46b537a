"""Content checks of the user's data and of imputed files made elsewhere, before any job runs: grouping columns,
numbers, magnitudes, observed values, and an imputed file's rows against the data's, cell by cell. Each problem
is one ``InputError`` line naming the file, row (its CSV line) and column and what to do; ``mlmi.run.inputs`` calls
these after the config's own checks."""
import csv

import numpy as np
import pandas as pd

from mlmi.fit.formula import fixed_design
from mlmi.fit.lmer_checks import TermSize, random_effects_problem
from mlmi.run.plan import InputError

#: Words that mean 'missing' in exported data, beyond pandas' own (NA, N/A, NULL, None, NaN, ...).
MISSING_WORDS = {"na", "n.a.", "missing", "miss", "unknown", "none", "nil", "empty", "blank"}
#: The largest magnitude a model variable may have: the fit multiplies squares of values (variances of
#: products), and 1e75 to the fourth power, 1e300, is still below the largest double (1.8e308).
LARGEST = 1e75
#: How far an imputed file's number may be from the data's observed one, relative: round-off of a CSV
#: copy (R's write.csv keeps 15 significant digits), never a change of the value.
RTOL = 1e-6


def check_groups(path: str, data: pd.DataFrame, formula, warn, residual: bool = True) -> None:
    """Every row has an id in each grouping column (a row without one cannot be imputed within its cluster),
    each grouping column has several levels, the random terms are ones lme4 can identify (``residual``: a
    linear mixed model's, checked against its residual variance as lmer does), and in a random-slope term
    groups of a single row are warned of."""
    for column in formula.grouping_columns:
        ids = data[column]
        if ids.isna().any():
            raise InputError(f"{path}: grouping column {column!r} is empty on {cells(path, ids.isna())}; "
                             "a row without its group cannot be imputed within its cluster: fill in the id, or "
                             "delete the row from a copy of the file and give that copy as data.source")
        levels = ids.unique()
        if len(levels) < 2:
            raise InputError(f"{path}: grouping column {column!r} has a single level ({_show(levels[0])}); "
                             "a multilevel model needs at least 2 groups: check the grouping factor of "
                             "model.formula")
    filled = with_gaps_filled(data[formula.variables(data.columns)])
    sizes = [TermSize(bar.lme4_text, bar.group, data.groupby(list(bar.factors)).ngroups, _effects(bar, filled))
             for bar in formula.bars]
    problem = random_effects_problem(len(data), sizes, residual)  # every row: each imputation has them all
    if problem:
        raise InputError(f"{path}: {problem}")
    for bar in formula.bars:
        groups = data.groupby(bar.factors[0] if len(bar.factors) == 1 else list(bar.factors)).size()
        singles = groups[groups == 1]
        if bar.slopes and len(singles):
            warn(f"{path}: {len(singles)} of {len(groups)} groups of {bar.group!r} have a single observation "
                 f"(first: {_show(singles.index[0])}), too few to show their own random slope of "
                 f"{', '.join(map(repr, bar.slopes))}; the run goes on, but look for a singular fit "
                 "(or drop those groups)")


def _effects(bar, data: pd.DataFrame) -> int:
    """Random effects per level of a term (lme4's ``nc``): its intercept and plain slopes, or the columns of
    its model matrix when a slope is an expression or a factor."""
    if bar.plain_slopes:
        return int(bar.intercept) + len(bar.slopes)
    return fixed_design(bar.terms, data).X.shape[1]


def check_numbers(path: str, data: pd.DataFrame, columns: list[str], formula) -> None:
    """Columns of numbers with a stray text cell (a missing-value code?), and a text outcome or random slope.

    A column is numbers when most of its observed cells are; a text column is a category,
    except the outcome and the random slopes, which must be numbers. Names the first bad cell.
    """
    for column in columns:
        values = data[column]
        if pd.api.types.is_numeric_dtype(values):
            continue
        bad = values.notna() & pd.to_numeric(values.astype(object), errors="coerce").isna()
        text = bad.sum() >= 0.5 * values.notna().sum()
        role = "the outcome" if column == formula.response else \
            "the random slope" if column in formula.slope_columns else None
        if not bad.any() or (text and role is None):
            continue
        value = values.iloc[int(np.argmax(bad.to_numpy()))]
        if text:
            raise InputError(f"{path}: {role} {column!r} must be numbers, but {cells(path, bad, _show(value))}; "
                             "recode it as numbers, or model another column")
        advice = f"add {value!r} to data.na_values if it means missing" if _looks_missing(str(value)) \
            else "correct it to a number in the file"
        raise InputError(f"{path}: column {column!r} holds numbers, but {cells(path, bad, _show(value))}; {advice}")


def cells(path: str, bad: pd.Series, shown: str | None = None) -> str:
    """Where the first of the ``bad`` cells is, with how many more there are: "line 5 (counting the header)
    has '.' (and 1 more such cell)" given the first cell ``shown``, else "line 5 (counting the header)
    (and 2 more rows)"."""
    where = _row_name(path, int(np.argmax(bad.to_numpy())))
    others = int(bad.sum()) - 1
    if shown is None:
        return where + (f" (and {others} more row{'s' if others > 1 else ''})" if others else "")
    return f"{where} has {shown}" + (f" (and {others} more such cell{'s' if others > 1 else ''})" if others else "")


def check_magnitudes(path: str, data: pd.DataFrame, columns: list[str]) -> None:
    """Numbers a fit cannot use: infinite ones (pandas reads 'inf' and 'Inf' as numbers), and ones beyond
    ±LARGEST, whose squares and products overflow in the fit (seen: 1e300 fails only at the pool)."""
    for column in columns:
        if not pd.api.types.is_numeric_dtype(data[column]):
            continue
        values = data[column].astype(float)
        bad = values.abs() > LARGEST                                  # inf too; a missing cell is never bad
        if not bad.any():
            continue
        value = values[bad].iloc[0]
        where = cells(path, bad, _show(float(value)))
        if np.isinf(value):
            raise InputError(f"{path}: column {column!r} holds numbers, but {where}; a model needs finite "
                             "numbers: correct it in the file, or leave the cell empty if it is missing")
        raise InputError(f"{path}: column {column!r} holds numbers, but {where}, beyond the ±{LARGEST:g} a fit can "
                         "square without overflow; correct it, or rescale the column (e.g. to thousands)")


def _looks_missing(text: str) -> bool:
    """Whether a text cell looks like a missing-value code: no letter or digit ('.', '?'), or a word like 'missing'."""
    return not any(char.isalnum() for char in text) or text.strip().lower() in MISSING_WORDS


def _row_name(path: str, position: int) -> str:
    """Where data row ``position`` (from 0) is, as the user finds it: its line in a CSV, its row in Parquet."""
    if not path.lower().endswith(".csv"):
        return f"row {position + 1}"
    return f"line {_csv_line(path, position)} (counting the header)"


def _data_row(path: str, position: int) -> str:
    """Data row ``position`` (from 0) counted from 1, with its line when ``path`` is a CSV:
    "row 3 (line 4, counting the header)"."""
    if not path.lower().endswith(".csv"):
        return f"row {position + 1}"
    return f"row {position + 1} (line {_csv_line(path, position)}, counting the header)"


def _csv_line(path: str, position: int) -> int:
    """The line of a CSV file (the header is line 1) on which data row ``position`` (from 0) starts."""
    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        reader, end, row = csv.reader(stream), 0, -1          # row -1: the header
        for record in reader:
            start, end = end + 1, reader.line_num             # a quoted cell may span lines
            if not record:                                     # pandas skips blank lines
                continue
            if row == position:
                return start
            row += 1
    return position + 2


def check_observed(path: str, data: pd.DataFrame, formula) -> None:
    """Every model variable has a value somewhere, and the outcome takes more than one value."""
    for column in formula.variables(data.columns):
        if data[column].isna().all():
            raise InputError(f"{path}: model variable {column!r} is missing in all {len(data)} rows; "
                             "check the column (and data.na_values), or leave it out of model.formula")
    outcome = data[formula.response].dropna()
    if outcome.nunique() == 1:
        raise InputError(f"{path}: the outcome {formula.response!r} is {_show(outcome.iloc[0])} in every row that has "
                         "a value; a model needs an outcome that varies: check the response of model.formula")


def _show(value) -> str:
    """A cell's value as the user wrote it: text quoted, numbers plain (3, not np.int64(3))."""
    return repr(value) if isinstance(value, str) else str(value)


def check_same_rows(path: str, imputed: pd.DataFrame, source: str, data: pd.DataFrame, formula) -> None:
    """An imputed data set keeps the data's rows in their order and every observed value: each cell of the
    grouping columns and of every column the data have in full (ids), then each observed cell of a model
    variable, must be in the file unchanged (numbers within a relative RTOL). A changed value would pool
    silently into wrong tables, and rows in another order would pair observed and imputed values wrongly
    in the report."""
    model = formula.variables(data.columns)
    ids = [c for c in data.columns if c not in model and data[c].notna().all()]
    groups = list(formula.grouping_columns)
    checked = [*groups, *(c for c in ids if c not in groups), *(c for c in model if c not in groups)]
    for column in [c for c in checked if c in imputed.columns]:          # ids first: they tell of another order
        differ = data[column].notna().to_numpy() & ~_same_values(data[column], imputed[column])
        if differ.any():
            row = int(np.argmax(differ))
            others = int(differ.sum()) - 1
            more = f" (and {others} more row{'s' if others > 1 else ''})" if others else ""
            raise InputError(
                f"{path}: {_data_row(path, row)} has {column} {_show(imputed[column].iloc[row])} where {source} "
                f"has {_show(data[column].iloc[row])}{more}; an imputed data set must keep the data's rows, in "
                f"order, and their observed values (numbers to a relative {RTOL:g}): give the files imputed "
                f"from {source}, in its row order")


def _same_values(data: pd.Series, imputed: pd.Series) -> np.ndarray:
    """Cell by cell, whether ``imputed`` holds the value of ``data``: numbers within a relative RTOL (the
    round-off of a CSV copy), anything else as text."""
    if pd.api.types.is_numeric_dtype(data) and pd.api.types.is_numeric_dtype(imputed):
        return np.isclose(data.to_numpy(dtype=float, na_value=np.nan), imputed.to_numpy(dtype=float, na_value=np.nan),
                          rtol=RTOL, atol=0)
    return (data.astype(str) == imputed.astype(str)).to_numpy()


def with_gaps_filled(data: pd.DataFrame) -> pd.DataFrame:
    """Every row of ``data`` with each missing cell set to its column's first observed value (0 in a column
    with none), so that the design check sees every factor level even when few or no rows are complete
    (formulaic drops incomplete rows, and a design of no rows fails inside formulaic)."""
    return data.apply(lambda column: column.fillna(column.dropna().iloc[0] if column.notna().any() else 0))

