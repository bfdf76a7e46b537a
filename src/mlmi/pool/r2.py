"""The multilevel R² pooled over the imputations: ``pooled/r2.csv``.

Each fit's measures are computed by the fit stage and kept in its record (``mlmi.fit.r2``, which says what each
measure is); pooled, each is their mean over the imputations, as ``mitml::multilevelR2`` averages a list of fits: a
point summary without an interval, since R² has no standard error of its own in these fits.
"""
import logging

import numpy as np
import pandas as pd

from mlmi.fit.r2 import MEASURES
from mlmi.fit.record import FitRecord

log = logging.getLogger(__name__)

#: The columns of ``pooled/r2.csv``.
R2_COLUMNS = ["imputation", *MEASURES]


def r2_by_fit(fits: list[FitRecord], labels) -> pd.DataFrame:
    """One row per fit (labelled by ``labels``) of the measures its record holds; NaN, with a warning, for a record
    of a linear mixed model without them (written by an mlmi before R², or by ``fit_mixed`` outside the fit stage);
    NaN for a generalized model's (these R² are a linear mixed model's variance decomposition)."""
    lacking = [label for label, fit in zip(labels, fits) if fit.r2 is None and fit.is_linear]
    if lacking:
        log.warning("fit records %s hold no R² (made before mlmi computed it, or outside the fit stage): their R² "
                    "is NaN in pooled/r2.csv; fit them again to have it", ", ".join(lacking))
    return pd.DataFrame([{"imputation": label, **{name: (fit.r2 or {}).get(name, np.nan) for name in MEASURES}}
                         for label, fit in zip(labels, fits)], columns=R2_COLUMNS)


def pool_r2(fits: list[FitRecord], labels=None) -> pd.DataFrame:
    """``pooled/r2.csv``: each imputation's measures (``labels`` name them, 1..m by default), then the ``pooled``
    row, their mean over the imputations (``mitml::multilevelR2`` on a list of fits: ``rowMeans`` of the per-fit
    values; NaN in one fit, NaN pooled)."""
    labels = [str(label) for label in (range(1, len(fits) + 1) if labels is None else labels)]
    by_fit = r2_by_fit(fits, labels)
    pooled = {"imputation": "pooled", **by_fit[list(MEASURES)].mean(skipna=False).to_dict()}
    return pd.concat([by_fit, pd.DataFrame([pooled])], ignore_index=True)[R2_COLUMNS]
