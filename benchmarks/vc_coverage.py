"""Coverage of the variance-component intervals: a study config's replications run in process, for more of them.

Each replication makes what the workflow's jobs make for one study run (simulate, ampute, impute m times, fit,
pool; the complete-data and listwise fits), with the same library calls and the same seeds (data from the
scenario's data and missingness settings and the replication, imputations from the scenario's name), but in one
process per worker, without Snakemake's few seconds per job: on a loaded machine that is most of a study's time.
Replications 1..R of this script are the workflow's rep_1..rep_R. Writes the estimates as they come and the
study's summary (``summarize_study``), and prints the random-effect SDs', correlation's and sigma's coverage.

    python benchmarks/vc_coverage.py config/studies/variance_components.yaml --replications 50 --workers 2 \\
        --out vc_coverage.csv
"""
import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from mlmi.data.ampute import ampute_from_config
from mlmi.data.simulate import simulate_hsb
from mlmi.fit.formula import parse_formula
from mlmi.fit.lmer import complete_cases, fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.impute.miceforest import impute
from mlmi.impute.models import method_settings
from mlmi.pool.rubin import pool
from mlmi.pool.summarize import random_effect_stats
from mlmi.pool.variance_components import pool_variance_components
from mlmi.run.plan import data_key, merge, scenario_key
from mlmi.run.seeds import int_seed_for, rng_for
from mlmi.run.study import plan_study, replication_estimates, summarize_study

REPO = Path(__file__).resolve().parents[1]
#: The columns printed for each variance parameter.
SHOWN = ["scenario", "method", "term", "n_reps", "bias", "bias_mcse", "coverage", "coverage_mcse", "coverage_n",
         "emp_se", "model_se"]


def planned(study_path: Path) -> dict[str, dict]:
    """The study's scenarios, each its whole config, as the workflow plans them: the schema's defaults filled in by
    Snakemake's own ``validate`` first (they take part in the data's seeds, ``data_key``)."""
    from snakemake.utils import validate

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    config = merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()),
                   yaml.safe_load(study_path.read_text()))
    validate(config, schema=str(REPO / "config" / "schema.yaml"))
    return plan_study(config, schema)


def replication(job: tuple[str, dict, int]) -> tuple[pd.DataFrame, dict]:
    """One study run of scenario ``name`` (its config) and replication ``r``: its estimates and the truth."""
    name, config, r = job
    seed, formula = config["seed"], config["model"]["formula"]
    data_prefix, prefix = (data_key(config), r), (scenario_key(name), r)
    complete, truth = simulate_hsb(config["data"]["simulate"], rng_for(seed, "simulate", prefix=data_prefix))
    missing = ampute_from_config(complete, config["missingness"], rng_for(seed, "ampute", prefix=data_prefix),
                                 group=parse_formula(formula).group)
    imputation, reml = config["imputation"], config["model"]["reml"]
    def fitted(data):
        return FitRecord.from_fit(fit_mixed(data, formula, reml=reml))

    fits = [fitted(impute(imputation["method"], missing, formula, seed=int_seed_for(seed, "impute", k, prefix),
                          **method_settings(imputation))[0])
            for k in range(1, imputation["m"] + 1)]
    estimates = replication_estimates(pooled=pool(fits), random_effects=random_effect_stats(fits),
                                      variance_components=pool_variance_components(fits),
                                      listwise=fitted(complete_cases(missing, formula)), complete=fitted(complete))
    return estimates.assign(scenario=name, replication=r), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study config, such as config/studies/variance_components.yaml")
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--first", type=int, default=1, help="the first replication (to add to an earlier run)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("vc_coverage.csv"))
    args = parser.parse_args()
    scenarios = planned(args.study)
    jobs = [(name, config, r) for r in range(args.first, args.first + args.replications)
            for name, config in scenarios.items()]
    results, truths = [], {}
    # spawn, not fork: a fork after LightGBM's OpenMP threads have started can hang the child.
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as workers:
        for estimates, truth in workers.map(replication, jobs):
            results.append(estimates)          # written as they come, so a long run can be read before it ends
            truths[estimates["scenario"].iloc[0]] = truth
            pd.concat(results, ignore_index=True).to_csv(args.out.with_suffix(".estimates.csv"), index=False)
    summary = summarize_study(pd.concat(results, ignore_index=True), truths)
    summary.to_csv(args.out, index=False)
    variance = summary[summary["term"].str.startswith(("sd__", "cor__"))]
    print(variance[SHOWN].to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
