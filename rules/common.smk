import functools
import inspect
import os
import sys

import yaml
from snakemake.common import overwrite_function_params
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from mlmi.run.damage import remove_damaged
from mlmi.run.layout import CHECKS, FIGURES, compare_fit_paths, figure_paths, pooled_tables
from mlmi.run.plan import NAME, InputError, Plan, imputation_files, run_parts, scenario_key

# Check everything the user gave before any job runs; a problem is one line and a stop. The checks run once, in
# the main process: a job that reads this file again on its own (each cluster job does) takes the config the
# main process checked, and reads no data unless its own params need them (a run's 'auto' lists, Plan).
with open(workflow.source_path("../config/schema.yaml")) as stream:  # libyaml's reader: a tenth of the time
    SCHEMA = yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
if workflow.is_main_process:
    from mlmi.run.inputs import check_inputs, schema_problem
    from mlmi.run.study import plan_study

    PROBLEM = schema_problem(config, SCHEMA)
    if PROBLEM:
        sys.exit(f"mlmi: {PROBLEM}")
validate(config, schema="../config/schema.yaml")  # Snakemake's own check; it also fills in defaults
INPUT_WARNINGS = []  # inputs the run goes on with but the user should look at; said once every check passed
try:
    if workflow.is_main_process:
        IMPUTED_FILES = check_inputs(config, warn=INPUT_WARNINGS.append)  # the base config's problems first
        PLAN = Plan(config, resolved=plan_study(config, SCHEMA))  # each scenario checked, its 'auto' lists found
    else:
        PLAN = Plan(config)
        IMPUTED_FILES = imputation_files(config["imputation"]["files"]) \
            if config["imputation"]["method"] == "external" else []
except InputError as error:
    sys.exit(f"mlmi: {error}")
STUDY = PLAN.scenarios
if workflow.is_main_process:  # each job re-reads this file: say them once
    for text in INPUT_WARNINGS:
        print(f"mlmi: warning: {text}", file=sys.stderr)
# A run killed by SIGKILL leaves Snakemake's lock behind; free it (only when no run is alive here) so
# `snakemake --rerun-incomplete` alone resumes, without `--unlock`.
if workflow.is_main_process:
    from mlmi.run.io import release_stale_lock

    if release_stale_lock():
        print("mlmi: removed the lock left in .snakemake/locks by a killed run, resuming its unfinished jobs",
              file=sys.stderr)
# A Parquet output cut short (a full disk, a killed copy) would fail the job reading it on every rerun: remove
# it, and ask for it again (get_final_outputs), so that Snakemake makes it, and what depends on it, again.
# Only mlmi's own outputs are looked at.
REMADE = remove_damaged(f"results/{config['scenario']}") if workflow.is_main_process else {}
for text in REMADE.values():
    print(f"mlmi: {text}", file=sys.stderr)

OUT = f"results/{config['scenario']}"
RUN = "results/{run}"
SIMULATED = config["data"]["source"] == "simulate"
EXTERNAL = config["imputation"]["method"] == "external"
M = len(IMPUTED_FILES) if EXTERNAL else config["imputation"]["m"]
# envs/mlmi.yaml under --software-deployment-method conda only, so `snakemake --archive` needs no conda. Decided
# here, once: a function in `conda:` is called for every job.
CONDA_ENV = "../envs/mlmi.yaml" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else None


def input_function(function):
    """``function``, an input or params function, with its signature worked out once: Snakemake reads the
    signature of each such function for each job (inspect.signature, some 150,000 times for a 10,000-job study),
    unless the function carries it (``snakemake.common.overwrite_function_params``)."""
    overwrite_function_params(function, inspect.signature(function).parameters)
    return function


def get_param(*keys):
    """An input function reading ``keys`` from the config of the run being made."""

    resolve = keys[0] == "imputation"  # only imputation has 'auto' lists to resolve (which may read the data)

    def fetch(wildcards):
        value = PLAN.run_config(wildcards.run) if resolve else PLAN.given(wildcards.run)
        for key in keys:
            value = value[key]
        return value

    return input_function(fetch)


@input_function
def get_run_config(wildcards):
    """The whole config of the single run, its 'auto' lists made explicit, for its report and provenance."""
    return PLAN.resolved()


@input_function
def get_categorical(wildcards):
    """imputation.categorical of the single run, made explicit, for its report."""
    return PLAN.resolved()["imputation"]["categorical"]


@input_function
def get_input_warnings(wildcards):
    """The start-up check's warnings, which load_data records in checks.json for the report. A job that reads
    this file on its own (a cluster job) skipped the check: it checks its data again to find them."""
    return INPUT_WARNINGS if workflow.is_main_process else rechecked_warnings()


@functools.cache
def rechecked_warnings():
    """The start-up check's warnings, found by checking the inputs again (once per process)."""
    from mlmi.run.inputs import check_inputs  # pandas and the data: the load_data job's own

    said = []
    check_inputs(config, warn=said.append)
    return said


@input_function
def get_imputation_settings(wildcards):
    """The imputation settings the run's method takes, so a study scenario may vary any of them."""
    from mlmi.impute.models import method_settings  # pandas: an impute job's own import

    return method_settings(PLAN.run_config(wildcards.run)["imputation"])


@input_function
def get_group(wildcards):
    """The outer grouping column of the run's model.formula (the clusters of level-2 amputation)."""
    return grouping_column(PLAN.given(wildcards.run)["model"]["formula"])


@functools.cache
def grouping_column(formula):
    """The outer grouping column of a model.formula (checked at start-up; ``MixedFormula.outer_group``), parsed once
    per formula."""
    from mlmi.fit.formula import parse_formula  # formulaic and pandas: an ampute job's own imports

    return parse_formula(formula).outer_group


@input_function
def get_seed_prefix(wildcards):
    """Seeds of a study run derive from (master, scenario, replication); the single run's from master."""
    parts = run_parts(wildcards.run)
    return [scenario_key(parts[0]), parts[1]] if parts else []


@input_function
def get_data_seed_prefix(wildcards):
    """Seeds of a study run's data derive from (master, its data and missingness settings, replication), so
    scenarios that differ only in their methods share their data sets; the single run's from master."""
    parts = run_parts(wildcards.run)
    return [PLAN.data_key(parts[0]), parts[1]] if parts else []


@input_function
def get_fits(wildcards=None):
    """The m per-imputation fit records of a run, in imputation order."""
    run = wildcards.run if wildcards else config["scenario"]
    return [f"results/{run}/fits/imp_{k}.json" for k in range(1, run_m(run) + 1)]


def run_m(run):
    """The number of imputations of a run."""
    parts = run_parts(run)
    return STUDY[parts[0]]["imputation"]["m"] if parts else M


@input_function
def get_run_dir(wildcards, input):
    """A run's results folder as its job sees it: the folder of its inputs (``pooled/`` and ``fits/``), not a path
    written here, so a job whose inputs are staged elsewhere (storage without a shared file system) reads them."""
    return os.path.dirname(os.path.dirname(input.pooled))


@input_function
def get_compare_model(wildcards):
    """The run's model with the formula of its comparison model ``wildcards.comparison`` (pooling.compare)."""
    given = PLAN.given(wildcards.run)
    formula = next(c["formula"] for c in given["pooling"]["compare"] if c["name"] == wildcards.comparison)
    return {**given["model"], "formula": formula}


@input_function
def get_compare_fits(wildcards=None):
    """Every comparison model's m fit records of a run (pooling.compare), comparison by comparison."""
    run = wildcards.run if wildcards else config["scenario"]
    comparisons = PLAN.given(run)["pooling"]["compare"]
    return [path for c in comparisons for path in compare_fit_paths(f"results/{run}", c["name"], run_m(run))]


@input_function
def get_d3_imputations(wildcards):
    """The run's imputed data sets when a comparison asks for D3 (the likelihood at the pooled estimates is
    evaluated on each); else none, and the pool job does not wait for them."""
    comparisons = PLAN.given(wildcards.run)["pooling"]["compare"]
    if not comparisons:
        return []
    from mlmi.pool.compare import METHODS  # numpy and pandas: a pool job's own imports

    if not any("D3" in c.get("methods", METHODS) for c in comparisons):
        return []
    return [f"results/{wildcards.run}/imputations/imp_{k}.parquet" for k in range(1, run_m(wildcards.run) + 1)]


def get_pooled_tables(run=config["scenario"]):
    """Every pooled table of design §4, by name (``mlmi.report.results``). Outputs cannot differ between a study's
    runs, so merTools' legacy table follows the base config (the study planner refuses it per scenario)."""
    return pooled_tables(f"results/{run}", mertools_legacy=config["pooling"]["mertools_legacy"])


def get_final_outputs():
    """The study's summary and the damaged data sets removed at start-up, or a single run's report, pooled
    tables, provenance record and data sets. Data sets are asked for by name because Snakemake would not
    remake a missing one whose dependants exist (a single run's even after a dry run removed it)."""
    if STUDY:
        return [f"{OUT}/summary.csv", f"{OUT}/study.html", *REMADE]
    data_sets = [path for path in get_run_outputs() if path.endswith(".parquet")]
    return [f"{OUT}/report.html", *get_pooled_tables().values(), f"{OUT}/provenance.json", *data_sets]


def say_where_to_look(out):
    """Print the two lines a successful run ends with: where its page is, and how to see the pooled model in
    the console (for a study: its summary table). ``out`` is the run's results folder, absolute.

    Called at exit: Snakemake has then printed its own last lines and gone back to the folder it was started
    in (-d changes folder only while the workflow runs), so the paths are as seen from where the user is.
    """
    def shown(path):
        inside = path.startswith(os.getcwd() + os.sep)
        return os.path.relpath(path) if inside else path

    if STUDY:
        lines = {f"mlmi: report: {shown(f'{out}/study.html')}": f"{out}/study.html",
                 f"mlmi: summary table: {shown(f'{out}/summary.csv')}": f"{out}/summary.csv"}
    else:
        lines = {f"mlmi: report: {shown(f'{out}/report.html')}": f"{out}/report.html",
                 f"mlmi: console view: mlmi summary {shown(out)}": f"{out}/pooled/fixed_effects.csv"}
    made = [line for line, path in lines.items() if os.path.exists(path)]  # not so when asked for other targets
    if made:
        print(*made, sep="\n", file=sys.stderr)


def get_study_runs():
    """Every replication of every scenario of the study, as run names."""
    replications = config["study"]["replications"]
    return [f"{config['scenario']}/{name}/rep_{r}" for name in STUDY for r in range(1, replications + 1)]


def get_truth():
    """The true parameters, for simulated data only."""
    return f"{OUT}/data/truth.json" if SIMULATED else []


@input_function
def get_imputed_file(wildcards):
    """The k-th external imputed file (natural order: imp2 before imp10)."""
    return IMPUTED_FILES[int(wildcards.k) - 1]


def get_run_inputs():
    """What the user gave: the config files, and the data and imputed files when not simulated."""
    given = [*workflow.configfiles, *([] if SIMULATED else [config["data"]["source"]]), *IMPUTED_FILES]
    return [in_workdir(path) for path in given]


def in_workdir(path):
    """``path`` relative to the working directory when it lies inside it, so that provenance.json
    still verifies after the whole folder is moved or copied; else absolute."""
    path = os.path.abspath(path)
    return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path


def get_imputations():
    """The m imputed data sets of the single run."""
    return [f"{OUT}/imputations/imp_{k}.parquet" for k in range(1, M + 1)]


def get_chains():
    """The imputation chains of the single run (none when the imputations came from elsewhere)."""
    return [] if EXTERNAL else [f"{OUT}/imputations/chains_{k}.csv" for k in range(1, M + 1)]


def get_run_jobs():
    """The jobs of the single run up to the pool, by the name of their log and benchmark files
    (``logs/<job>.log``): this run's m only, whatever an earlier run in the folder left behind."""
    data = ["simulate", "ampute"] if SIMULATED else ["load_data"]
    imputation = "load_imputation" if EXTERNAL else "impute"
    per_imputation = [f"{rule}/{k}" for rule in (imputation, "fit") for k in range(1, M + 1)]
    compare = [f"fit_compare/{c['name']}/{k}" for c in config["pooling"]["compare"] for k in range(1, M + 1)]
    models = [] if EXTERNAL else ["imputation_models"]
    return [*data, *models, *per_imputation, *compare, "fit_listwise", "pool"]


def get_checks():
    """The start-up check's record of its warnings: made by load_data, for a user's data (the data it checks)."""
    return [] if SIMULATED else [f"{OUT}/{CHECKS}"]


def get_unrecorded_logs():
    """The logs of the single run's jobs whose warnings no record carries (what the data, imputation and pool
    libraries said), for the report's Warnings. The fits, the imputation models and the start-up check record
    their own warnings; the report reads those records."""
    recorded = ("fit/", "fit_listwise", "imputation_models", "load_data")  # fit_compare's: only in their logs
    return [f"{OUT}/logs/{job}.log" for job in get_run_jobs() if not job.startswith(recorded)]


def get_run_benchmarks(*later):
    """The benchmark files of the single run's jobs, and of the ``later`` rules', for its run time."""
    return [f"{OUT}/benchmarks/{job}.tsv" for job in [*get_run_jobs(), *later]]

def get_traces():
    """The multilevel sampler's parameter draws of the single run (header only for miceforest; none when external)."""
    return [] if EXTERNAL else [f"{OUT}/imputations/trace_{k}.csv" for k in range(1, M + 1)]


def get_imputation_models():
    """What was imputed how, and whether it carries the model (none when the imputations came from elsewhere)."""
    return [] if EXTERNAL else [f"{OUT}/imputations/models.csv"]


def get_run_outputs():
    """Every result file a run makes, for the checksums of provenance.json."""
    data = ["complete.parquet", "truth.json", "missing.parquet"] if SIMULATED else ["missing.parquet"]
    return [
        *[f"{OUT}/data/{name}" for name in data],
        *get_imputations(),
        *get_chains(),
        *get_traces(),
        *get_imputation_models(),
        *get_checks(),
        *get_fits(),
        *get_compare_fits(),
        f"{OUT}/fits/listwise.json",
        *get_pooled_tables().values(),
        f"{OUT}/report.html",
        *figure_paths(OUT).values(),
    ]


def get_study_truths():
    """One truth.json per study scenario (its first replication's; the truth is the scenario's)."""
    return [f"{OUT}/{name}/rep_1/data/truth.json" for name in STUDY]


@input_function
def get_label(wildcards):
    """The label of a per-imputation fit: its imputation number."""
    return wildcards.k
