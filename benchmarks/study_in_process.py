"""Run a study's replications without Snakemake: the same mlmi.run.stages calls, with the same parameters and seeds as
the workflow's rules, one process per worker, into the same layout under another folder.

A study's jobs are small (a GLMM fit of 2,000 rows takes about half a second of CPU), so Snakemake's cost per job
(a Python process, its imports and the script preamble: a few seconds of CPU, benchmarks/job_overhead.py)
dominates a study of small data sets, and on a busy machine at `nice -n 19` its wall time most. This gives the
workflow's numbers for a fraction of that: every replication's estimates.csv is byte-identical to the one
Snakemake writes (check with --compare-with), and summary.csv comes from the same study_summary stage.
What it skips: the report, provenance and logs of each run, and Snakemake's bookkeeping.

    python benchmarks/study_in_process.py config/studies/binary.yaml config/studies/binary_r50.yaml \
        --out results/in_process --workers 2 [--compare-with results]
"""
import argparse
import filecmp
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml
from snakemake.utils import validate

from mlmi.fit.formula import parse_formula
from mlmi.impute.models import method_settings
from mlmi.run import stages
from mlmi.run.layout import pooled_tables
from mlmi.run.plan import Plan, merge, scenario_key
from mlmi.run.study import plan_study

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def study_config(configfiles: list[Path]) -> dict:
    """The config the workflow runs: the default, each --configfile merged over it in order, validated by
    Snakemake's own validate (which fills in the schema's defaults, as the Snakefile's does)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in configfiles:
        config = merge(config, yaml.safe_load(path.read_text()))
    validate(config, schema=str(SCHEMA))
    return config


def run_replication(config: dict, resolved: dict, name: str, r: int, out: Path) -> Path:
    """One replication of study scenario ``name``, as the rules make it (``resolved``: the scenarios' checked
    configs, ``mlmi.run.study.plan_study``); returns its estimates.csv."""
    plan = Plan(config, resolved=resolved)
    run = f"{config['scenario']}/{name}/rep_{r}"
    given, resolved, folder = plan.given(run), plan.run_config(run), out / run
    model, imputation, seed = given["model"], resolved["imputation"], given["seed"]
    data_prefix, prefix = [plan.data_key(name), r], [scenario_key(name), r]
    estimates = folder / "estimates.csv"
    if estimates.exists():
        return estimates
    for sub in ("data", "imputations", "fits", "pooled"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    stages.simulate(folder / "data/complete.parquet", folder / "data/truth.json", settings=given["data"]["simulate"],
                    seed=seed, seed_prefix=data_prefix)
    stages.ampute(folder / "data/complete.parquet", folder / "data/missing.parquet", missingness=given["missingness"],
                  group=parse_formula(model["formula"]).group, seed=seed, seed_prefix=data_prefix)
    fits = []
    for k in range(1, imputation["m"] + 1):
        stages.impute(folder / "data/missing.parquet", folder / f"imputations/imp_{k}.parquet",
                      folder / f"imputations/chains_{k}.csv", folder / f"imputations/trace_{k}.csv", k=k, seed=seed,
                      method=imputation["method"], formula=model["formula"], settings=method_settings(imputation),
                      threads=1, seed_prefix=prefix)
        fits.append(folder / f"fits/imp_{k}.json")
        stages.fit(folder / f"imputations/imp_{k}.parquet", fits[-1], model=model, label=str(k))
    stages.fit(folder / "data/missing.parquet", folder / "fits/listwise.json", model=model, label="listwise",
               listwise=True)
    stages.fit(folder / "data/complete.parquet", folder / "fits/complete.json", model=model, label="complete")
    tables = pooled_tables(folder, mertools_legacy=config["pooling"]["mertools_legacy"])
    stages.pool_fits(fits, folder / "fits/listwise.json", tables, on_failed_fit=given["pooling"]["on_failed_fit"],
                     tests=given["pooling"]["tests"], formula=model["formula"])
    stages.replication(estimates, run_dir=folder)
    return estimates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configfiles", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("results/in_process"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare-with", type=Path, help="a results folder of the same study made by Snakemake")
    args = parser.parse_args()
    config = study_config(args.configfiles)
    resolved = plan_study(config, yaml.safe_load(SCHEMA.read_text()))     # every scenario checked, as at start-up
    runs = [(name, r) for name in resolved for r in range(1, config["study"]["replications"] + 1)]
    # spawn, not fork: a fork after LightGBM's OpenMP threads have started can hang the child.
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as workers:
        paths = list(workers.map(run_replication, *zip(*[(config, resolved, name, r, args.out) for name, r in runs])))
    root = args.out / config["scenario"]
    stages.study_summary(root / "summary.csv", root / "study.html", estimate_paths=paths,
                         runs=[f"{config['scenario']}/{name}/rep_{r}" for name, r in runs],
                         truth_paths=[root / name / "rep_1" / "data" / "truth.json" for name in resolved],
                         scenarios=list(resolved))
    print(f"summary: {root / 'summary.csv'}")
    if args.compare_with:
        theirs = [args.compare_with / path.relative_to(args.out) for path in paths]
        both = [(ours, other) for ours, other in zip(paths, theirs) if other.exists()]
        same = sum(filecmp.cmp(ours, other, shallow=False) for ours, other in both)
        print(f"estimates.csv byte-identical to {args.compare_with}'s in {same} of the {len(both)} replications "
              "both made")


if __name__ == "__main__":
    main()
