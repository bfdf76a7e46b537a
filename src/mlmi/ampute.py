"""Missing values put into complete data, as the merTools vignette's ``add_NA`` does.

Only MCAR for now (design §1): every cell of a listed column goes missing independently,
so the complete cases are a simple random sample and listwise deletion stays unbiased.
"""
import numbers

import numpy as np
import pandas as pd


def _check(data: pd.DataFrame, prob: dict) -> None:
    """Raise ValueError naming the first listed column that is absent or has a bad probability."""
    for column, p in prob.items():
        if column not in data.columns:
            raise ValueError(f"column {column!r} to ampute is not in the data")
        if not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"probability {p!r} for column {column!r} is not in [0, 1)")


def ampute_mcar(data: pd.DataFrame, prob: dict[str, float], rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``data`` with each cell of each listed column missing with its probability.

    Parameters
    ----------
    data : pandas.DataFrame
        Complete data; never modified.
    prob : dict of str to float
        Column -> probability in [0, 1) that a cell becomes missing, as in the vignette's
        ``add_NA(x, prob)`` (``rbinom(length(x), 1, prob)``). Columns are processed in this
        order, one uniform draw per row each, so a seed gives the same holes.
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    pandas.DataFrame
        The amputed copy. An integer column that receives missing values becomes nullable
        ``Int64`` (0/1 stays integer, not float); float columns hold NaN; unlisted columns
        are untouched.
    """
    _check(data, prob)
    out = data.copy()
    for column, p in prob.items():
        missing = rng.random(len(out)) < p
        if not missing.any():
            continue
        values = out[column]
        if pd.api.types.is_integer_dtype(values):
            values = values.astype("Int64")
        out[column] = values.mask(missing)
    return out
