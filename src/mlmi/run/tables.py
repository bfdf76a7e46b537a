"""The user's table read as mlmi reads it: a CSV or Parquet file whose missing-value codes (data.na_values)
are made missing, with one-line errors for what cannot be read (no such file, an empty or damaged one, repeated
or unusable column names). Only reads: the file is never changed."""
import collections
import csv
import os

import pandas as pd

from mlmi.run.damage import parquet_problem
from mlmi.run.plan import InputError

SUFFIXES = (".csv", ".parquet")


def read_table(path: str, columns=None, na_values=()) -> pd.DataFrame:
    """Read a CSV or Parquet file (by its suffix), optionally only some columns.

    Missing are empty cells, ``NA`` and ``NaN`` (pandas' defaults) and every code in
    ``na_values`` (data.na_values, e.g. -99): a number matches by value, text as written.
    A categorical column (Parquet's dictionary type, as R factors and pandas categoricals are
    written) is read as its values, so that a factor's levels and reference are those of R's
    ``factor()`` on them (sorted), whatever order the file stores: the same as the file's CSV copy.
    A repeated column name, a file separated by ';' and an unreadable Parquet file are refused.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: unknown file type {suffix!r}; give a .csv or .parquet file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (relative paths are read from the working directory {os.getcwd()})")
    empty = InputError(f"{path}: the file is empty; give a header row of column names and one row per observation")
    if os.path.getsize(path) == 0:
        raise empty
    if suffix == ".csv":
        _check_names(path, _csv_header(path))
        try:
            data = pd.read_csv(path, usecols=columns, na_values=[str(code) for code in na_values])
        except pd.errors.EmptyDataError:  # blank lines only
            raise empty from None
    else:
        data = _read_parquet(path, columns)
    if data.empty:
        raise InputError(f"{path}: column names but no rows of data; give one row per observation")
    return mark_missing(_as_values(data), na_values)


def _csv_header(path: str) -> list[str]:
    """The column names as the first non-blank line of a CSV file has them (pandas renames a repeated one)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        return next((record for record in csv.reader(stream) if record), [])


def _read_parquet(path: str, columns) -> pd.DataFrame:
    """A Parquet file the user gave, its column names checked; a damaged one is a one-line error."""
    import pyarrow.parquet

    problem = parquet_problem(path)
    if problem:
        raise InputError(f"{path}: not a readable Parquet file ({problem}); write it again from its source, "
                         "or give it as CSV")
    _check_names(path, pyarrow.parquet.read_schema(path).names)
    return pd.read_parquet(path, columns=columns)


def _check_names(path: str, names: list[str]) -> None:
    """Column names pandas would read wrongly: one name with ';' in it (a file separated by ';'), and a name
    given twice (pandas would rename the second 'x' to 'x.1', a column of its own that is then imputed)."""
    if len(names) == 1 and ";" in names[0]:
        raise InputError(f"{path}: one column named {names[0]!r}: the file seems to be separated by ';', but mlmi "
                         "reads comma-separated CSV; save it with ',' between cells (R: write.csv, not write.csv2; "
                         "Excel: 'CSV (Comma delimited)'), or as Parquet")
    repeated = [name for name, count in collections.Counter(names).items() if count > 1]
    if repeated:
        places = [str(number) for number, name in enumerate(names, start=1) if name == repeated[0]]
        raise InputError(f"{path}: the column name {repeated[0]!r} is given {len(places)} times (columns "
                         f"{' and '.join(places)}); give each column a name of its own")


def _as_values(data: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain columns of their values (text, or numbers as a CSV copy has them)."""
    return data.apply(lambda column: column.astype(object).infer_objects()
                      if isinstance(column.dtype, pd.CategoricalDtype) else column)


def mark_missing(data: pd.DataFrame, na_values) -> pd.DataFrame:
    """``data`` with every cell equal to a missing-value code made missing: numbers by value, text as text."""
    if not na_values:
        return data
    numbers = [number for number in map(_as_number, na_values) if number is not None]
    texts = [str(code) for code in na_values]
    return data.apply(lambda column: column.mask(
        column.isin(numbers) if pd.api.types.is_numeric_dtype(column) else column.isin(texts)))


def _as_number(code) -> float | None:
    """A missing-value code as a number (-99 and "-99" alike), or None for text such as "."."""
    try:
        return float(code)
    except ValueError:
        return None

