"""Which miceforest settings to make the default: the vignette's, with cluster means as predictors, and
with a bootstrap of schools as well, compared on the same simulated data sets.

The quick study's design (60 schools, 30% of ses missing at random on mathach, strength 2, m = 5):
each replication simulates and amputes once, with a study run's seeds for scenario
"miceforest_variants", then imputes, fits and pools it under every variant (paired comparison),
with the library functions the workflow's rules call, in one process per worker. Prints bias and
coverage with their Monte Carlo SEs (Morris, White & Crowther 2019) and writes the summary table.

    python benchmarks/miceforest_variants.py --replications 20 --workers 2 --out variants.csv
"""
import argparse
import copy
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from mlmi.ampute import ampute_from_config
from mlmi.fit import complete_cases, fit_mixed
from mlmi.impute import impute
from mlmi.imputation_models import method_settings
from mlmi.inputs import imputation_roles
from mlmi.plan import merge, scenario_key
from mlmi.pool import pool
from mlmi.seeds import int_seed_for, rng_for
from mlmi.simulate import simulate_hsb
from mlmi.study import replication_estimates, summarize_study
from mlmi.summarize import random_effect_stats
from mlmi.variance_components import pool_variance_components

REPO = Path(__file__).resolve().parents[1]
DESIGN = {"data": {"simulate": {"n_schools": 60}},
          "missingness": {"mechanism": "MAR", "prob": {"minority": 0.0, "female": 0.0, "ses": 0.3, "size": 0.0},
                          "predictors": {"minority": ["mathach"], "female": ["mathach"], "ses": ["mathach"],
                                         "size": ["mathach"]}, "strength": 2.0},
          "imputation": {"m": 5, "iterations": 5, "exclude": "auto"}}
VARIANTS = {
    "vignette": {"imputation": {"cluster_predictors": False, "bootstrap": False}},
    "cluster_means": {"imputation": {"cluster_predictors": True, "bootstrap": False}},
    "cluster_means_bootstrap": {"imputation": {"cluster_predictors": True, "bootstrap": True}},
}
SCENARIO = "miceforest_variants"


def variant_configs() -> dict[str, dict]:
    """Each variant's whole config: the default, the design, the variant; 'auto' lists made explicit."""
    base = merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), DESIGN)
    configs = {name: merge(base, override) for name, override in VARIANTS.items()}
    for config in configs.values():
        config["imputation"].update(imputation_roles(config))
    return configs


def replication(r: int) -> tuple[pd.DataFrame, dict]:
    """One data set, imputed, fitted and pooled under every variant; estimates by variant and method."""
    configs = variant_configs()
    first = next(iter(configs.values()))
    seed, formula, prefix = first["seed"], first["model"]["formula"], (scenario_key(SCENARIO), r)
    complete, truth = simulate_hsb(first["data"]["simulate"], rng_for(seed, "simulate", prefix=prefix))
    missing = ampute_from_config(complete, first["missingness"], rng_for(seed, "ampute", prefix=prefix))
    listwise, complete_fit = fit_mixed(complete_cases(missing, formula), formula), fit_mixed(complete, formula)
    estimates = []
    for name, config in configs.items():
        imputation = config["imputation"]
        fits = [fit_mixed(impute(imputation["method"], missing, formula, seed=int_seed_for(seed, "impute", k, prefix),
                                 **method_settings(imputation))[0], formula)
                for k in range(1, imputation["m"] + 1)]
        estimates.append(replication_estimates(pooled=pool(fits), random_effects=random_effect_stats(fits),
                                               variance_components=pool_variance_components(fits), listwise=listwise,
                                               complete=complete_fit).assign(scenario=name, replication=r))
    return pd.concat(estimates, ignore_index=True), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("miceforest_variants.csv"))
    args = parser.parse_args()
    # spawn, not fork: a fork after LightGBM's OpenMP threads have started can hang the child.
    results = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as workers:
        for result in workers.map(replication, range(1, args.replications + 1)):
            results.append(result)          # written as they come, so a long run can be read before it ends
            estimates = pd.concat([estimates for estimates, _ in results], ignore_index=True)
            estimates.to_csv(args.out.with_suffix(".estimates.csv"), index=False)
    summary = summarize_study(estimates, {name: results[0][1] for name in VARIANTS})
    summary.to_csv(args.out, index=False)
    shown = summary[summary["term"].isin(["ses", "meanses", "sd__ses", "minority"])]
    print(shown[["scenario", "method", "term", "n_reps", "bias", "bias_mcse", "rel_bias", "coverage",
                 "coverage_mcse", "emp_se", "model_se"]].to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
