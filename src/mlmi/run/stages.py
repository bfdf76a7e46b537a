"""One function per workflow step, from input paths to output paths (design §1).

The Snakemake scripts call these and nothing else, so every step runs and is tested
without Snakemake. Each step imports the modules it needs when it runs: a job then pays only
for its own imports (about 0.9 s less for an impute job; benchmarks/job_overhead.py).
"""
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlmi.run import io
from mlmi.run.seeds import int_seed_for, rng_for

if TYPE_CHECKING:
    from mlmi.fit.record import FitRecord

log = logging.getLogger(__name__)


def simulate(complete_path, truth_path, *, settings: dict, seed: int, seed_prefix=()) -> None:
    """Simulate the hsb-like data set and write it with its true parameters."""
    from mlmi.data.simulate import simulate_hsb

    data, truth = simulate_hsb(settings, rng_for(seed, "simulate", prefix=seed_prefix))
    log.info("simulated %d students in %d schools", len(data), data["schid"].nunique())
    io.write_parquet(data, complete_path)
    io.write_json(truth, truth_path)


def ampute(complete_path, missing_path, *, missingness: dict, group: str, seed: int, seed_prefix=()) -> None:
    """Punch holes into the complete data: MCAR (the vignette's ``add_NA``), MAR or MNAR; the level-2
    columns of ``missingness`` in whole clusters of ``group``."""
    from mlmi.data.ampute import ampute_from_config

    missing = ampute_from_config(io.read_parquet(complete_path), missingness,
                                 rng_for(seed, "ampute", prefix=seed_prefix), group=group)
    log.info("missing values per column: %s", missing.isna().sum().to_dict())
    io.write_parquet(missing, missing_path)


def impute(missing_path, imputed_path, chains_path, trace_path, *, k: int, seed: int, method: str, formula: str,
           settings: dict, threads: int, seed_prefix=()) -> None:
    """Write the k-th imputed data set by ``method``, its chains and its trace, seeded from the master seed
    and k alone; ``settings`` are the method's keys of the imputation config
    (``mlmi.impute.models.method_settings``)."""
    from mlmi.impute.miceforest import impute as impute_by_method

    job_seed = int_seed_for(seed, "impute", k, seed_prefix)
    log.info("imputation %d by %s: seed %d, %d threads, settings %s", k, method, job_seed, threads, settings)
    completed, chains, trace = impute_by_method(method, io.read_parquet(missing_path), formula, seed=job_seed,
                                                threads=threads, **settings)
    io.write_parquet(completed, imputed_path)
    io.write_csv(chains, chains_path)
    io.write_csv(trace, trace_path)


def imputation_models(missing_path, models_path, *, imputation: dict, formula: str) -> None:
    """Write what is imputed how (``mlmi.impute.models``) and log, as warnings, each imputation model that
    cannot carry the analysis model, with the config change that fixes it."""
    from mlmi.fit.formula import parse_formula
    from mlmi.impute.models import imputation_models as describe

    models = describe(imputation, parse_formula(formula), io.read_parquet(missing_path))
    for warning in models["warning"][models["warning"] != ""]:
        log.warning(warning)
    io.write_csv(models, models_path)


def fit(data_path, fit_path, *, model: dict, label: str, listwise: bool = False) -> None:
    """Fit ``model`` (the config's ``model`` section: formula, reml, family, link, nagq, weights) to one data set (its
    complete cases when ``listwise``) and write the record: a linear mixed model (``mlmi.fit.lmer``), or of family
    binomial or poisson a generalized one fitted as glmer does (``mlmi.fit.glmm``). A linear mixed model's record
    gets its multilevel R² (``mlmi.fit.r2``: the null model is fitted here, where the data are). A key the
    config's schema fills in may be absent for a library caller: its default holds."""
    from mlmi.fit.formula import parse_formula
    from mlmi.fit.lmer import Design, complete_cases, fit_design
    from mlmi.fit.r2 import fit_r2
    from mlmi.fit.record import FitRecord

    formula, weights = model["formula"], model.get("weights")
    data = io.read_parquet(data_path)
    if listwise:
        data = complete_cases(data, formula)
        if weights:
            data = data.loc[data[weights].notna()].reset_index(drop=True)
        log.info("listwise deletion keeps %d rows", len(data))
    if model.get("family", "gaussian") == "gaussian":
        design = Design(data, parse_formula(formula))
        made = fit_design(design, formula, reml=model["reml"], label=label)
        made["r2"] = fit_r2(data, FitRecord.from_fit(made), design)
    else:
        from mlmi.fit.glmm import fit_glmm

        made = fit_glmm(data, formula, model["family"], model.get("link"), model.get("nagq") or 1, weights=weights,
                        label=label)
    record = FitRecord.from_fit(made)
    for message in record.warnings:
        log.warning("%s: %s", label, message)
    io.write_json(record.to_json(), fit_path)


@dataclass(frozen=True)
class Pooling:
    """What the pool stage makes every pooled table from (``mlmi.run.layout.PooledTable.takes`` names the fields):
    the pooled ``fits`` and their imputation ``labels`` (the converged ones under ``pooling.on_failed_fit``), the
    ``listwise`` fit, every fit's record by label (``records``: the imputations' and ``listwise``), the
    ``pooling.tests`` to run and the rows of ``pooling.compare``'s comparisons (None when none are asked for)."""

    fits: list["FitRecord"]
    labels: list[str]
    listwise: "FitRecord"
    records: dict[str, "FitRecord"]
    tests: list
    comparisons: pd.DataFrame | None


def pool_fits(fit_paths, listwise_path, outputs, on_failed_fit: str = "stop", tests=(), comparisons=(),
              compare_paths=(), imputed_paths=(), formula: str | None = None) -> None:
    """Write every pooled table of design §4 from the m fit records and the listwise one.

    ``outputs`` maps keys of ``mlmi.run.layout.POOLED_TABLES`` (and ``LEGACY_TABLES``: merTools' legacy arithmetic,
    when asked) to paths; each table is made by the function its entry names, from the ``Pooling`` fields it takes.
    ``tests`` are ``pooling.tests``: D1 tests of the pooled fits, with the pooling's dfcom (n - npar, as
    mice::D1 takes it: Reiter's small-sample df); none gives tests.csv with its header only.
    ``comparisons`` are ``pooling.compare``: D2 and D3 rows after the D1 ones, from the nested model's fit
    records ``compare_paths`` (``mlmi.run.layout.compare_fit_paths``, comparison by comparison), the imputed data
    sets ``imputed_paths`` in imputation order (read for D3 only) and the analysis model's ``formula``.
    Fits that did not converge stop the job, or with ``on_failed_fit`` warn are left out of every
    pooled table (and a comparison leaves out the imputations where either model's fit failed);
    model_info keeps every fit, its ``pooled`` column saying which were pooled.
    """
    from mlmi.fit.record import FitRecord
    from mlmi.pool.failed_fits import converged_fits, left_out_messages
    from mlmi.run.layout import LEGACY_TABLES, POOLED_TABLES

    paths = {str(k): str(path) for k, path in enumerate(fit_paths, start=1)}
    every = {k: FitRecord.from_json(path) for k, path in paths.items()}
    kept = converged_fits(every, paths, on_failed_fit)
    for message in left_out_messages([k for k in every if k not in kept], len(every)):
        log.warning(message)
    listwise = FitRecord.from_json(listwise_path)
    compared = (_comparison_rows(kept, paths, list(comparisons), compare_paths, imputed_paths, formula, on_failed_fit)
                if comparisons else None)
    pooling = Pooling(fits=list(kept.values()), labels=list(kept), listwise=listwise,
                      records=every | {"listwise": listwise}, tests=list(tests), comparisons=compared)
    tables = {**POOLED_TABLES, **LEGACY_TABLES}
    for key, path in outputs.items():
        io.write_csv(_made(tables[key], pooling), path)


def _made(table, pooling: Pooling) -> pd.DataFrame:
    """A pooled table (``mlmi.run.layout.PooledTable``), made by its function from the fields of ``pooling`` it
    takes."""
    module, _, name = table.make.partition(":")
    return getattr(importlib.import_module(module), name)(**{field: getattr(pooling, field) for field in table.takes})


def _comparison_rows(kept: dict, paths: dict, comparisons: list, compare_paths, imputed_paths, formula: str,
                     on_failed_fit: str) -> pd.DataFrame:
    """The D2 and D3 rows of ``pooling.compare`` over the imputations whose fits of both models are pooled."""
    from mlmi.fit.record import FitRecord
    from mlmi.pool.compare import comparison_tests
    from mlmi.pool.failed_fits import FailedFitError, converged_fits

    by_name = {comparison["name"]: {} for comparison in comparisons}
    for path in map(str, compare_paths):           # .../fits/compare/<name>/imp_<k>.json
        by_name[Path(path).parent.name][Path(path).stem.removeprefix("imp_")] = path
    labels = list(kept)
    nested = {}
    for name, named_paths in by_name.items():
        records = converged_fits({k: FitRecord.from_json(path) for k, path in named_paths.items()}, named_paths,
                                 on_failed_fit)
        labels = [k for k in labels if k in records]
        nested[name] = records
    if len(labels) < 2:
        raise FailedFitError(f"only {len(labels)} imputations have converged fits of model.formula and every "
                             "pooling.compare model; a comparison needs at least 2")
    if len(labels) < len(kept):
        log.warning("the model comparisons leave out imputations %s, where a comparison model's fit did not "
                    "converge (pooling.on_failed_fit: warn)", [k for k in kept if k not in labels])
    imputed = dict(zip(paths, map(str, imputed_paths)))
    data, loglik_on = None, None
    if imputed_paths:                              # D3: the likelihoods on the data are the fit's
        from mlmi.fit.lmer import loglik_at_parameters as loglik_on

        data = [io.read_parquet(imputed[k]) for k in labels]
    return comparison_tests([kept[k] for k in labels], comparisons,
                            {name: [records[k] for k in labels] for name, records in nested.items()}, data, formula,
                            loglik_on)


def report(report_path, *, figure_paths: dict, fixed_effects_path, missing_path, truth_path, fit_paths,
           listwise_fit_path, imputed_paths, chain_paths, log_paths, scenario: str, formula: str,
           categorical, provenance: dict | None, models_path=None, trace_paths=(), checks_path=None,
           threads: int = 1) -> None:
    """Write the HTML report and its figure files, with the warnings the run's records carry (the fits', the
    imputation models' ``models_path``, the start-up check's ``checks_path``) and those logged in ``log_paths``;
    the figures drawn by up to ``threads`` processes at once.

    ``log_paths`` are the logs of this run's jobs whose warnings no record carries
    (``<results>/logs/<job>.log``, declared inputs of the report), named in the report by the job
    (``impute/3``). Only these are read, never the logs folder: an earlier run in the same folder leaves logs
    of jobs that are not this run's.
    """
    from mlmi.report.run_report import write_report

    logs = {log_label(path): path for path in log_paths}
    write_report(report_path, pooled_dir=Path(fixed_effects_path).parent, missing_path=missing_path,
                 truth_path=truth_path, fit_paths=fit_paths, listwise_fit_path=listwise_fit_path,
                 imputed_paths=imputed_paths, chain_paths=chain_paths, scenario=scenario, formula=formula,
                 categorical=categorical, logs=logs, provenance=provenance, figure_paths=figure_paths,
                 models_path=models_path, trace_paths=trace_paths, checks_path=checks_path, processes=threads)


def log_label(path) -> str:
    """The job a log belongs to, as its path below the ``logs`` folder says: ``.../logs/fit/3.log`` is ``fit/3``."""
    parts = Path(path).with_suffix("").parts
    return "/".join(parts[len(parts) - parts[::-1].index("logs"):])


def load(source_path, data_path, checks_path=None, *, na_values=(), warnings=()) -> None:
    """Copy a user's CSV or Parquet data set into the workflow as Parquet, its missing-value codes
    (data.na_values) made missing (the file is only read); record the start-up check's ``warnings`` about it in
    ``checks_path`` (``mlmi.run.layout.CHECKS``), which the report reads, and log them for people."""
    from mlmi.run.tables import read_table

    for text in warnings:
        log.warning(text)
    if checks_path is not None:
        io.write_json({"warnings": list(warnings)}, checks_path)
    data = read_table(str(source_path), na_values=na_values)
    log.info("read %s: %d rows, %d columns, %d missing values", source_path, *data.shape, int(data.isna().sum().sum()))
    io.write_parquet(data, data_path)


def replication(estimates_path, *, run_dir) -> None:
    """One study replication's estimates by method (complete, listwise, pooled), in one table, from the run's
    results read as every reader reads them (``mlmi.report.results.RunResults``): its pooled fixed effects,
    random-effect summaries and variance components, and its listwise and complete-data fits."""
    from mlmi.report.results import RunResults
    from mlmi.run.study import replication_estimates

    results = RunResults.load(run_dir, required=("fixed_effects", "random_effects", "variance_components"))
    estimates = replication_estimates(pooled=results.table("fixed_effects"),
                                      random_effects=results.table("random_effects"),
                                      variance_components=results.table("variance_components"),
                                      listwise=results.fit("listwise"), complete=results.fit("complete"))
    io.write_csv(estimates, estimates_path)


def study_summary(summary_path, html_path, *, estimate_paths, runs, truth_paths, scenarios) -> None:
    """Performance of each method in each scenario over all replications, as a table and a page."""
    from mlmi.report.study_report import write_study_report
    from mlmi.run.plan import run_parts
    from mlmi.run.study import summarize_study

    estimates = pd.concat([pd.read_csv(path).assign(**dict(zip(("scenario", "replication"), run_parts(run))))
                           for path, run in zip(estimate_paths, runs)], ignore_index=True)
    truths = {scenario: io.read_json(path) for scenario, path in zip(scenarios, truth_paths)}
    summary = summarize_study(estimates, truths)
    io.write_csv(summary, summary_path)
    write_study_report(html_path, summary)
