"""What Amelia's ``summary()`` shows about the missing values of a data set.

Fraction missing per column, rows left after listwise deletion, and the distinct patterns
of missingness (the complete pattern counted too, as Amelia counts it).
"""
import pandas as pd


def summarize_missingness(data: pd.DataFrame, model_vars: list[str]) -> dict:
    """Summarize where values are missing, as Amelia's summary does.

    Parameters
    ----------
    data : pandas.DataFrame
        The data with missing values (``NaN``, ``None`` or ``pd.NA``).
    model_vars : list of str
        The columns the model uses; a row is kept by listwise deletion only if none of
        these is missing.

    Returns
    -------
    dict
        ``fraction_missing``: column -> fraction of rows missing, every column in order;
        ``n_rows``: number of rows;
        ``rows_listwise``: rows with no missing value in ``model_vars``;
        ``n_patterns``: distinct missingness patterns over all columns, the complete
        pattern included (Amelia's "Patterns of missingness in the data");
        ``patterns``: DataFrame, one row per pattern, a boolean per column (True =
        missing) and ``n_rows``, the most frequent pattern first (ties in order of first
        appearance).

    Raises
    ------
    KeyError
        If a model variable is not a column of ``data``.
    """
    absent = [name for name in model_vars if name not in data.columns]
    if absent:
        raise KeyError(f"model variables not in the data: {', '.join(absent)}")
    missing = data.isna()
    return {
        "fraction_missing": {column: float(missing[column].mean()) for column in data.columns},
        "n_rows": len(data),
        "rows_listwise": int((~missing[model_vars].any(axis=1)).sum()),
        "n_patterns": len(missing.drop_duplicates()),
        "patterns": missingness_patterns(missing),
    }


def missingness_patterns(missing: pd.DataFrame) -> pd.DataFrame:
    """Count each distinct row of a boolean missingness mask, most frequent first."""
    counts = missing.groupby(list(missing.columns), sort=False).size()
    patterns = counts.rename("n_rows").reset_index()
    return patterns.sort_values("n_rows", ascending=False, kind="stable", ignore_index=True)
