"""One function per workflow step, from input paths to output paths (design §1).

The Snakemake scripts call these and nothing else, so every step runs and is tested
without Snakemake.
"""
import logging
from pathlib import Path

from mlmi import io, pool, summarize
from mlmi.ampute import ampute_mcar
from mlmi.fit import complete_cases, fit_mixed
from mlmi.impute import impute_once
from mlmi.inputs import read_table
from mlmi.mertools import mertools_fixed_effects
from mlmi.report import write_report
from mlmi.seeds import int_seed_for, rng_for
from mlmi.simulate import simulate_hsb

log = logging.getLogger(__name__)


def simulate(complete_path, truth_path, *, settings: dict, seed: int) -> None:
    """Simulate the hsb-like data set and write it with its true parameters."""
    data, truth = simulate_hsb(settings, rng_for(seed, "simulate"))
    log.info("simulated %d students in %d schools", len(data), data["schid"].nunique())
    io.write_parquet(data, complete_path)
    io.write_json(truth, truth_path)


def ampute(complete_path, missing_path, *, prob: dict, seed: int) -> None:
    """Punch MCAR holes into the complete data (the vignette's ``add_NA``)."""
    missing = ampute_mcar(io.read_parquet(complete_path), prob, rng_for(seed, "ampute"))
    log.info("missing values per column: %s", missing.isna().sum().to_dict())
    io.write_parquet(missing, missing_path)


def impute(missing_path, imputed_path, chains_path, *, k: int, seed: int, iterations: int, exclude, categorical,
           threads: int) -> None:
    """Write the k-th imputed data set and its chains, seeded from the master seed and k alone."""
    job_seed = int_seed_for(seed, "impute", k)
    log.info("imputation %d: seed %d, %d iterations, %d threads", k, job_seed, iterations, threads)
    completed, chains = impute_once(io.read_parquet(missing_path), seed=job_seed, iterations=iterations,
                                    exclude=exclude, categorical=categorical, threads=threads)
    io.write_parquet(completed, imputed_path)
    io.write_csv(chains, chains_path)


def fit(data_path, fit_path, *, formula: str, reml: bool, label: str, listwise: bool = False) -> None:
    """Fit the model to one data set (its complete cases when ``listwise``) and write the record."""
    data = io.read_parquet(data_path)
    if listwise:
        data = complete_cases(data, formula)
        log.info("listwise deletion keeps %d rows", len(data))
    record = fit_mixed(data, formula, reml=reml, label=label)
    for message in record["convergence"]["warnings"]:
        log.warning("%s: %s", label, message)
    io.write_json(record, fit_path)


def pool_fits(fit_paths, listwise_path, outputs) -> None:
    """Write every pooled table of design §4 from the m fit records and the listwise one.

    ``outputs`` maps fixed_effects, by_imputation, listwise, random_effects, varcorr,
    ranef and model_info to their paths, and mertools (merTools' legacy arithmetic) when asked.
    """
    fits = [io.read_json(path) for path in fit_paths]
    listwise = io.read_json(listwise_path)
    io.write_csv(pool.pool(fits), outputs["fixed_effects"])
    io.write_csv(pool.fixed_effects_by_imputation(fits), outputs["by_imputation"])
    io.write_csv(pool.wald_table(listwise), outputs["listwise"])
    io.write_csv(summarize.random_effect_stats(fits), outputs["random_effects"])
    io.write_csv(summarize.varcorr(fits), outputs["varcorr"])
    io.write_csv(summarize.pool_ranef(fits), outputs["ranef"])
    labelled = {str(k): fit for k, fit in enumerate(fits, start=1)} | {"listwise": listwise}
    io.write_csv(summarize.model_info(labelled), outputs["model_info"])
    if "mertools" in outputs:
        io.write_csv(mertools_fixed_effects(fits), outputs["mertools"])


def report(report_path, *, fixed_effects_path, missing_path, truth_path, scenario: str, formula: str) -> None:
    """Write the self-contained HTML report from the pooled tables (in one folder)."""
    write_report(report_path, pooled_dir=Path(fixed_effects_path).parent, missing_path=missing_path,
                 truth_path=truth_path, scenario=scenario, formula=formula)


def load(source_path, data_path) -> None:
    """Copy a user's CSV or Parquet data set into the workflow as Parquet (the file is only read)."""
    data = read_table(str(source_path))
    log.info("read %s: %d rows, %d columns, %d missing values", source_path, *data.shape, int(data.isna().sum().sum()))
    io.write_parquet(data, data_path)
