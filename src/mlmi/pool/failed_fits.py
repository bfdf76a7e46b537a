"""What the pool stage does with fits that did not converge (``pooling.on_failed_fit``), and how the pooled
tables say which imputations were left out (``model_info.csv``'s ``pooled`` column).

A policy of the workflow, not of Rubin's rules: ``mlmi.pool.rubin`` pools whatever fits it is given.
"""
import pandas as pd

from mlmi.fit.record import FitRecord

#: What pooling does when a fit did not converge (``pooling.on_failed_fit``): stop, or pool the others.
ON_FAILED_FIT = ("stop", "warn")
#: What to do about fits that did not converge, the end of every message about them.
CHECK_MODEL = "check the model (centre or rescale its predictors, simplify its random part)"


class FailedFitError(ValueError):
    """Fits that did not converge, where ``pooling.on_failed_fit`` does not let pooling go on without them."""


def converged_fits(fits: dict[str, FitRecord], paths: dict[str, str], on_failed_fit: str) -> dict[str, FitRecord]:
    """The fits to pool, by imputation label, under ``on_failed_fit`` (one of ON_FAILED_FIT).

    Every fit when all converged. Otherwise ``stop`` raises a FailedFitError naming each
    failed imputation, its file and the optimizer's message; ``warn`` keeps the fits that
    converged, and raises the same error when fewer than 2 did (pooling needs m >= 2).
    """
    if on_failed_fit not in ON_FAILED_FIT:
        raise ValueError(f"on_failed_fit is {on_failed_fit!r}; use one of {ON_FAILED_FIT}")
    failed = [k for k, fit in fits.items() if not fit.converged]
    if not failed:
        return fits
    named = "; ".join(f"imputation {k} ({paths[k]}): {fits[k].failure}" for k in failed)
    kept = {k: fit for k, fit in fits.items() if k not in failed}
    if on_failed_fit == "stop":
        raise FailedFitError(f"{len(failed)} of {len(fits)} fits did not converge and pooling.on_failed_fit is stop: "
                             f"{named}; {CHECK_MODEL}, or set pooling.on_failed_fit: warn to pool the fits that "
                             "converged")
    if len(kept) < 2:
        raise FailedFitError(f"only {len(kept)} of {len(fits)} fits converged, and pooling needs at least 2: {named}; "
                             f"{CHECK_MODEL}")
    return kept


def left_out(model_info: pd.DataFrame) -> list[str]:
    """Imputations that model_info's ``pooled`` column marks as left out of the pool (none without the column)."""
    if "pooled" not in model_info:
        return []
    imputed = model_info[model_info["imputation"].astype(str) != "listwise"]
    return [str(k) for k, pooled in zip(imputed["imputation"], imputed["pooled"]) if not pooled]


def left_out_warnings(model_info: pd.DataFrame) -> list[str]:
    """One warning per imputation that model_info marks as left out of the pool (``left_out_messages``)."""
    return left_out_messages(left_out(model_info), int((model_info["imputation"].astype(str) != "listwise").sum()))


def left_out_messages(excluded: list[str], total: int) -> list[str]:
    """One warning per imputation left out of the pool, saying how many of the ``total`` were pooled."""
    return [f"imputation {k} was left out of the pooled results: its fit did not converge "
            f"(pooling.on_failed_fit: warn); {total - len(excluded)} of {total} imputations pooled" for k in excluded]
