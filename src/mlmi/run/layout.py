"""The results contract's names (design §4), in one place: the pooled tables, figures and records a run writes
under ``results/<run>/``.

The rules (``rules/*.smk``), the pool stage and every reader (``mlmi.report.results``) take the names from here, so
adding a pooled table is one entry in ``POOLED_TABLES`` and the function that makes it (docs/architecture.md).
Every Snakemake process reads the workflow, a cluster's jobs too: this module imports only ``typing``.
"""
from typing import NamedTuple


class PooledTable(NamedTuple):
    """A pooled table of design §4: its file stem under ``pooled/``, the function that makes it in the pool stage
    (``module:function``, as a package's entry points name code, resolved only there: every Snakemake process
    reads this module) and the pool stage's inputs it is made from, passed by name (``mlmi.run.stages.Pooling``:
    fits, labels, listwise, records, tests, comparisons)."""

    stem: str
    make: str
    takes: tuple[str, ...]


#: Every pooled table of design §4 by key (the pool rule's output name), in the order the pool stage writes them.
POOLED_TABLES = {
    "fixed_effects": PooledTable("fixed_effects", "mlmi.pool.rubin:pool", ("fits", "labels")),
    "by_imputation": PooledTable("fixed_effects_by_imputation", "mlmi.pool.rubin:fixed_effects_by_imputation",
                                 ("fits", "labels")),
    "listwise": PooledTable("listwise_fixed_effects", "mlmi.pool.summarize:listwise_fixed_effects", ("listwise",)),
    "random_effects": PooledTable("random_effects", "mlmi.pool.summarize:random_effect_stats", ("fits",)),
    "varcorr": PooledTable("varcorr", "mlmi.pool.summarize:varcorr", ("fits",)),
    "ranef": PooledTable("ranef", "mlmi.pool.summarize:pool_ranef", ("fits",)),
    "model_info": PooledTable("model_info", "mlmi.pool.summarize:model_info", ("records", "labels")),
    "tests": PooledTable("tests", "mlmi.pool.hypotheses:tests_table", ("fits", "tests", "comparisons")),
    "r2": PooledTable("r2", "mlmi.pool.r2:pool_r2", ("fits", "labels")),
    "variance_components": PooledTable("variance_components",
                                       "mlmi.pool.variance_components:pool_variance_components", ("fits", "labels")),
    "ratios": PooledTable("ratios", "mlmi.pool.rubin:ratios", ("fits", "labels")),
}
#: Pooled tables written only when asked for (``pooling.mertools_legacy``).
LEGACY_TABLES = {"mertools": PooledTable("mertools_fixed_effects", "mlmi.pool.mertools:mertools_fixed_effects",
                                         ("fits",))}

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
    tables = {**POOLED_TABLES, **(LEGACY_TABLES if mertools_legacy else {})}
    return {key: f"{run_dir}/pooled/{table.stem}.csv" for key, table in tables.items()}


def compare_fit_paths(run_dir, name: str, m: int) -> list[str]:
    """The m fit records of ``pooling.compare``'s comparison ``name``, in imputation order: each imputation's fit
    of the nested model, beside the analysis model's ``fits/imp_<k>.json``."""
    return [f"{run_dir}/fits/compare/{name}/imp_{k}.json" for k in range(1, m + 1)]


def figure_paths(run_dir) -> dict[str, str]:
    """Every figure of the report by name, as a path under ``run_dir``."""
    return {name: f"{run_dir}/figures/{name}.png" for name in FIGURES}
