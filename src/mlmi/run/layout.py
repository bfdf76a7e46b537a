"""The results contract's names (design §4), in one place: the pooled tables, figures and records a run writes
under ``results/<run>/``.

The rules (``rules/*.smk``), the pool stage and every reader (``mlmi.report.results``) take the names from here, so
adding a pooled table is one entry in ``POOLED_TABLES`` and the code that writes it (docs/architecture.md).
Every Snakemake process reads the workflow, a cluster's jobs too: this module imports nothing.
"""

#: Every pooled table of design §4: its key (the pool rule's output name, the pool stage's ``outputs`` key)
#: to its file stem under ``pooled/``.
POOLED_TABLES = {
    "fixed_effects": "fixed_effects",
    "by_imputation": "fixed_effects_by_imputation",
    "listwise": "listwise_fixed_effects",
    "random_effects": "random_effects",
    "varcorr": "varcorr",
    "ranef": "ranef",
    "model_info": "model_info",
    "tests": "tests",
    "r2": "r2",
    "variance_components": "variance_components",
}
#: Pooled tables written only when asked for (``pooling.mertools_legacy``).
LEGACY_TABLES = {"mertools": "mertools_fixed_effects"}

#: The report's figures: file stem under ``figures/`` to the part of Snakemake's report that shows it.
FIGURES = {
    "missingness_patterns": "Data and missingness",
    "imputation_diagnostics": "Imputation diagnostics",
    "forest": "Fixed effects",
    "random_effects": "Random effects",
    "caterpillar": "Random effects",
}

#: The start-up check's record, ``{"warnings": [...]}`` (written for a user's data, which the check reads).
CHECKS = "checks.json"


def pooled_tables(run_dir, mertools_legacy: bool = False) -> dict[str, str]:
    """Every pooled table of a run by key, as a path under ``run_dir`` (merTools' legacy table when asked for)."""
    names = {**POOLED_TABLES, **(LEGACY_TABLES if mertools_legacy else {})}
    return {key: f"{run_dir}/pooled/{name}.csv" for key, name in names.items()}


def compare_fit_paths(run_dir, name: str, m: int) -> list[str]:
    """The m fit records of ``pooling.compare``'s comparison ``name``, in imputation order: each imputation's fit
    of the nested model, beside the analysis model's ``fits/imp_<k>.json``."""
    return [f"{run_dir}/fits/compare/{name}/imp_{k}.json" for k in range(1, m + 1)]


def figure_paths(run_dir) -> dict[str, str]:
    """Every figure of the report by name, as a path under ``run_dir``."""
    return {name: f"{run_dir}/figures/{name}.png" for name in FIGURES}
