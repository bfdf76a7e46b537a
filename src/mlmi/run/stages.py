"""One function per workflow step, from input paths to output paths (design §1).

The Snakemake scripts call these and nothing else, so every step runs and is tested
without Snakemake. Each step imports the modules it needs when it runs: a job then pays only
for its own imports (about 0.9 s less for an impute job; benchmarks/job_overhead.py).
"""
import logging
from pathlib import Path

import pandas as pd

from mlmi.run import io
from mlmi.run.seeds import int_seed_for, rng_for

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


def fit(data_path, fit_path, *, formula: str, reml: bool, label: str, listwise: bool = False,
        family: dict | None = None) -> None:
    """Fit the model to one data set (its complete cases when ``listwise``) and write the record: a linear mixed
    model (``mlmi.fit.lmer``), or with ``family`` (model.family, .link, .nagq, .weights) binomial or poisson, a
    generalized one fitted as glmer does (``mlmi.fit.glmm``). A linear mixed model's record gets its multilevel R²
    (``mlmi.fit.r2``: the null model is fitted here, where the data are)."""
    from mlmi.fit.formula import parse_formula
    from mlmi.fit.lmer import Design, complete_cases, fit_design
    from mlmi.fit.r2 import fit_r2
    from mlmi.fit.record import FitRecord

    family = family or {"family": "gaussian"}
    data = io.read_parquet(data_path)
    if listwise:
        data = complete_cases(data, formula)
        if family.get("weights"):
            data = data.loc[data[family["weights"]].notna()].reset_index(drop=True)
        log.info("listwise deletion keeps %d rows", len(data))
    if family["family"] == "gaussian":
        design = Design(data, parse_formula(formula))
        made = fit_design(design, formula, reml=reml, label=label)
        made["r2"] = fit_r2(data, FitRecord.from_fit(made), design)
    else:
        from mlmi.fit.glmm import fit_glmm

        made = fit_glmm(data, formula, family["family"], family.get("link"), family.get("nagq") or 1,
                        weights=family.get("weights"), label=label)
    record = FitRecord.from_fit(made)
    for message in record.warnings:
        log.warning("%s: %s", label, message)
    io.write_json(record.to_json(), fit_path)


def pool_fits(fit_paths, listwise_path, outputs, on_failed_fit: str = "stop", tests=(), comparisons=(),
              compare_paths=(), imputed_paths=(), formula: str | None = None) -> None:
    """Write every pooled table of design §4 from the m fit records and the listwise one.

    ``outputs`` maps fixed_effects, by_imputation, listwise, random_effects, varcorr,
    ranef, model_info, tests, r2 (``mlmi.fit.r2``) and variance_components (``mlmi.pool.variance_components``) to their
    paths, and mertools (merTools' legacy arithmetic) when asked.
    ``tests`` are ``pooling.tests``: D1 tests of the pooled fits, with the pooling's dfcom (n - npar, as
    mice::D1 takes it: Reiter's small-sample df); none gives tests.csv with its header only.
    ``comparisons`` are ``pooling.compare``: D2 and D3 rows after the D1 ones, from the nested model's fit
    records ``compare_paths`` (``mlmi.run.layout.compare_fit_paths``, comparison by comparison), the imputed data
    sets ``imputed_paths`` in imputation order (read for D3 only) and the analysis model's ``formula``.
    Fits that did not converge stop the job, or with ``on_failed_fit`` warn are left out of every
    pooled table (and a comparison leaves out the imputations where either model's fit failed);
    model_info keeps every fit, its ``pooled`` column saying which were pooled.
    """
    from mlmi.fit.r2 import pool_r2
    from mlmi.fit.record import FitRecord
    from mlmi.pool import rubin as pool
    from mlmi.pool import summarize
    from mlmi.pool.failed_fits import converged_fits, left_out_warnings
    from mlmi.pool.hypotheses import d1_tests
    from mlmi.pool.mertools import mertools_fixed_effects
    from mlmi.pool.variance_components import pool_variance_components

    paths = {str(k): str(path) for k, path in enumerate(fit_paths, start=1)}
    every = {k: FitRecord.from_json(path) for k, path in paths.items()}
    kept = converged_fits(every, paths, on_failed_fit)
    fits = list(kept.values())
    listwise = FitRecord.from_json(listwise_path)
    info = summarize.model_info(every | {"listwise": listwise})
    info["pooled"] = info["imputation"].isin(list(kept))
    for message in left_out_warnings(info):
        log.warning(message)
    io.write_csv(pool.pool(fits, labels=list(kept)), outputs["fixed_effects"])
    io.write_csv(pool.fixed_effects_by_imputation(fits, labels=list(kept)), outputs["by_imputation"])
    io.write_csv(listwise.wald_table(), outputs["listwise"])
    io.write_csv(summarize.random_effect_stats(fits), outputs["random_effects"])
    io.write_csv(summarize.varcorr(fits), outputs["varcorr"])
    io.write_csv(summarize.pool_ranef(fits), outputs["ranef"])
    io.write_csv(info, outputs["model_info"])
    table = d1_tests(fits, list(tests), dfcom=fits[0].dfcom)
    if comparisons:
        compared = _comparison_rows(kept, paths, list(comparisons), compare_paths, imputed_paths, formula,
                                    on_failed_fit)
        table = compared if table.empty else pd.concat([table, compared], ignore_index=True)
    io.write_csv(table, outputs["tests"])
    io.write_csv(pool_r2(kept), outputs["r2"])
    io.write_csv(pool_variance_components(fits, labels=list(kept)), outputs["variance_components"])
    if "mertools" in outputs:
        io.write_csv(mertools_fixed_effects(fits), outputs["mertools"])


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
    data = [io.read_parquet(imputed[k]) for k in labels] if imputed_paths else None
    return comparison_tests([kept[k] for k in labels], comparisons,
                            {name: [records[k] for k in labels] for name, records in nested.items()}, data, formula)


def report(report_path, *, figure_paths: dict, fixed_effects_path, missing_path, truth_path, fit_paths,
           listwise_fit_path, imputed_paths, chain_paths, log_paths, scenario: str, formula: str,
           categorical, provenance: dict | None, models_path=None, trace_paths=(), checks_path=None) -> None:
    """Write the HTML report and its figure files, with the warnings the run's records carry (the fits', the
    imputation models' ``models_path``, the start-up check's ``checks_path``) and those logged in ``log_paths``.

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
                 models_path=models_path, trace_paths=trace_paths, checks_path=checks_path)


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


def replication(estimates_path, *, pooled_path, random_effects_path, variance_components_path, listwise_path,
                complete_path) -> None:
    """One study replication's estimates by method (complete, listwise, pooled), in one table."""
    from mlmi.fit.record import FitRecord
    from mlmi.run.study import replication_estimates

    estimates = replication_estimates(pooled=pd.read_csv(pooled_path), random_effects=pd.read_csv(random_effects_path),
                                      variance_components=pd.read_csv(variance_components_path),
                                      listwise=FitRecord.from_json(listwise_path),
                                      complete=FitRecord.from_json(complete_path))
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
