"""The report's view of ``pooled/r2.csv`` and ``pooled/variance_components.csv``: tables with their legends, read
from the results folder and only formatted (``mlmi.report.run_report`` calls these; the markup is in ``r2.html.j2`` and
``variance_components.html.j2``; the legends come from ``legends.yaml``). A results folder older than
these tables shows none (None)."""
import pandas as pd

from mlmi.report.page import table

#: How the R² table labels pooled/r2.csv's columns.
R2_LABELS = {"imputation": "imputation", "r2_marginal": "marginal", "r2_conditional": "conditional",
             "r2_rb1": "RB1", "r2_rb2": "RB2", "r2_sb": "SB"}
#: The variance components' columns shown, and their labels.
VC_LABELS = {"group": "group", "term": "term", "estimate": "estimate", "conf_low": "95% CI low",
             "conf_high": "95% CI high", "scale": "scale", "scaled_std_error": "SE (scale)", "df": "df",
             "riv": "riv", "fmi": "fmi"}


def r2_context(r2: pd.DataFrame | None, legend: dict) -> dict | None:
    """Each imputation's R² and their mean (the ``pooled`` row), or None for an older run; ``legend``
    says what each shown column is."""
    if r2 is None:
        return None
    shown = r2[list(R2_LABELS)].rename(columns=R2_LABELS)
    shown["imputation"] = shown["imputation"].astype(str)
    return {"table": table(shown, legend=legend),
            "m": int((shown["imputation"] != "pooled").sum())}


def variance_components_context(vc: pd.DataFrame | None, truth_values: dict | None, legend: dict) -> dict | None:
    """The pooled SDs, correlations and sigma with their intervals (truth first when known: ``truth_values`` by
    group and term), or None for an older
    run; ``undefined`` counts parameters without an interval (a fit on the boundary)."""
    if vc is None:
        return None
    shown = vc[list(VC_LABELS)].rename(columns=VC_LABELS)
    if truth_values is not None:
        shown.insert(2, "truth", [truth_values.get(key, float("nan")) for key in zip(vc["group"], vc["term"])])
    return {"table": table(shown, legend=legend),
            "undefined": int(vc["conf_low"].isna().sum())}
