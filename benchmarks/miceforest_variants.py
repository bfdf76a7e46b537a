"""Which miceforest settings to make the default: the vignette's, with cluster means as predictors, and
with a bootstrap of schools as well; and the size of its LightGBM forests: miceforest's own against mlmi's
(``mlmi.impute.miceforest.FOREST``). All compared on the same simulated data sets.

The quick study's design (60 schools, 30% of ses missing at random on mathach, strength 2, m = 5):
each replication simulates and amputes once, with a study run's seeds for scenario
"miceforest_variants", then imputes (same seeds), fits and pools it under every variant and forest (paired
comparison), with the library functions the workflow's rules call, in one process per worker. Prints bias
and coverage with their Monte Carlo SEs (Morris, White & Crowther 2019), and each scenario's paired
differences from the first one; writes the summary table, the differences, every estimate and the CPU
seconds of every imputation (``--out`` with suffixes ``.differences.csv``, ``.estimates.csv``,
``.seconds.csv``), each replication as it comes.

    python benchmarks/miceforest_variants.py --replications 20 --workers 2 --out variants.csv
    python benchmarks/miceforest_variants.py --variants cluster_means_bootstrap --forests miceforest mlmi \
        --replications 100 --out forests.csv
"""
import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import yaml

import mlmi.impute.miceforest
from mlmi.data.ampute import ampute_from_config
from mlmi.data.simulate import simulate_hsb
from mlmi.fit.lmer import complete_cases, fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.impute.miceforest import impute
from mlmi.impute.models import method_settings
from mlmi.pool.rubin import pool
from mlmi.pool.summarize import random_effect_stats
from mlmi.pool.variance_components import pool_variance_components
from mlmi.run.inputs import imputation_roles
from mlmi.run.plan import merge, scenario_key
from mlmi.run.seeds import int_seed_for, rng_for
from mlmi.run.study import replication_estimates, summarize_study, true_value

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
#: LightGBM forests (``mlmi.impute.miceforest.FOREST`` while a variant imputes): miceforest's own defaults (48
#: trees, 255 bins), mlmi's, and smaller ones (docs/imputation-speed.md).
FORESTS = {"miceforest": {}, "mlmi": dict(mlmi.impute.miceforest.FOREST),
           "16_trees_63_bins": {"num_iterations": 16, "max_bin": 63}, "24_trees": {"num_iterations": 24}}
SCENARIO = "miceforest_variants"
#: The terms compared in the paired differences: fixed effects and random-effect SDs.
SHOWN = ["(Intercept)", "minority", "female", "ses", "meanses", "sd__(Intercept)", "sd__ses", "sd__Observation"]


def variant_configs(variants) -> dict[str, dict]:
    """Each of ``variants``' whole config: the default, the design, the variant; 'auto' lists made explicit."""
    base = merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), DESIGN)
    configs = {name: merge(base, VARIANTS[name]) for name in variants}
    for config in configs.values():
        config["imputation"].update(imputation_roles(config))
    return configs


def scenario_name(variant: str, forest: str, forests) -> str:
    """A scenario's name: the variant's, with the forest's after a '/' when forests are compared."""
    return variant if len(forests) == 1 and forest == "mlmi" else f"{variant}/{forest}"


def replication_data(config: dict, r: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Replication r's complete data, its truth and its incomplete data, with a study run's seeds."""
    seed, prefix = config["seed"], (scenario_key(SCENARIO), r)
    complete, truth = simulate_hsb(config["data"]["simulate"], rng_for(seed, "simulate", prefix=prefix))
    return complete, truth, ampute_from_config(complete, config["missingness"], rng_for(seed, "ampute", prefix=prefix))


def replication(r: int, variants, forests) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """One data set, imputed, fitted and pooled under every variant and forest: the estimates by scenario and
    method, the truth, and the CPU seconds of each imputation."""
    configs = variant_configs(variants)
    first = next(iter(configs.values()))
    seed, formula, prefix = first["seed"], first["model"]["formula"], (scenario_key(SCENARIO), r)
    complete, truth, missing = replication_data(first, r)
    listwise, complete_fit = (FitRecord.from_fit(fit_mixed(data, formula))
                              for data in (complete_cases(missing, formula), complete))
    estimates, seconds = [], []
    for (name, config), forest in ((item, forest) for item in configs.items() for forest in forests):
        scenario, imputation = scenario_name(name, forest, forests), config["imputation"]
        fits = []
        with mock.patch.dict(mlmi.impute.miceforest.FOREST, FORESTS[forest], clear=True):
            for k in range(1, imputation["m"] + 1):
                start = time.process_time()
                imputed = impute(imputation["method"], missing, formula, seed=int_seed_for(seed, "impute", k, prefix),
                                 **method_settings(imputation))[0]
                seconds.append((scenario, r, k, time.process_time() - start))
                fits.append(FitRecord.from_fit(fit_mixed(imputed, formula)))
        estimates.append(replication_estimates(pooled=pool(fits), random_effects=random_effect_stats(fits),
                                               variance_components=pool_variance_components(fits), listwise=listwise,
                                               complete=complete_fit).assign(scenario=scenario, replication=r))
    return (pd.concat(estimates, ignore_index=True), truth,
            pd.DataFrame(seconds, columns=["scenario", "replication", "imputation", "cpu_seconds"]))


def paired_differences(estimates: pd.DataFrame, truth: dict, reference: str) -> pd.DataFrame:
    """Per scenario other than ``reference`` and term of SHOWN: the pooled estimates' mean paired difference
    from ``reference`` divided by the true value (the difference in relative bias) and its MCSE (the SD of the
    differences / sqrt(R)); for a fixed effect, the difference in coverage, its paired MCSE, and in how many
    replications one interval covers the truth and the other does not."""
    pooled = estimates[(estimates["method"] == "pooled") & estimates["term"].isin(SHOWN)].copy()
    true = {term: true_value(truth, term) for term in SHOWN}
    pooled["covered"] = np.where(pooled["conf_low"].isna(), np.nan,
                                 (pooled["conf_low"] <= pooled["term"].map(true))
                                 & (pooled["term"].map(true) <= pooled["conf_high"]))
    wide = pooled.pivot(index=["replication", "term"], columns="scenario", values=["estimate", "covered"])
    rows = []
    for scenario in (s for s in pooled["scenario"].unique() if s != reference):
        for term, group in wide.groupby(level="term", sort=False):
            estimate = (group["estimate", scenario] - group["estimate", reference]) / true[term]
            covered = group["covered", scenario] - group["covered", reference]
            root_n = np.sqrt(len(group))
            rows.append({"scenario": scenario, "reference": reference, "term": term, "n_reps": len(group),
                         "rel_bias_difference": estimate.mean(), "rel_bias_difference_mcse": estimate.std() / root_n,
                         "coverage_difference": covered.mean(), "coverage_difference_mcse": covered.std() / root_n,
                         "discordant": (covered != 0).sum() if covered.notna().all() else np.nan})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--forests", nargs="+", choices=list(FORESTS), default=["mlmi"])
    parser.add_argument("--out", type=Path, default=Path("miceforest_variants.csv"))
    parser.add_argument("--join", type=Path, help="the .estimates.csv of an earlier run on the same replications, "
                        "whose scenarios come first (the first one is the paired reference)")
    args = parser.parse_args()
    results = []
    # spawn, not fork: a fork after LightGBM's OpenMP threads have started can hang the child.
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as workers:
        for result in workers.map(partial(replication, variants=args.variants, forests=args.forests),
                                  range(1, args.replications + 1)):
            results.append(result)          # written as they come, so a long run can be read before it ends
            summary, differences = write(results, args.out, args.join)
    shown = summary[summary["term"].isin(["ses", "meanses", "sd__ses", "minority"])]
    print(shown[["scenario", "method", "term", "n_reps", "bias", "bias_mcse", "rel_bias", "coverage",
                 "coverage_mcse", "emp_se", "model_se"]].to_string(index=False, float_format="%.3f"))
    if not differences.empty:
        print(differences.to_string(index=False, float_format="%.4f"))
    seconds = pd.concat([seconds for _, _, seconds in results])
    print(seconds.groupby("scenario", sort=False)["cpu_seconds"].median().to_string(float_format="%.3f"))


def write(results, out: Path, join: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the summary, the paired differences, the estimates and the seconds of the replications so far;
    with ``join``, of the replications both runs have, that run's estimates first."""
    estimates = pd.concat([estimates for estimates, _, _ in results], ignore_index=True)
    if join is not None:
        earlier = pd.read_csv(join)
        both = set(earlier["replication"]) & set(estimates["replication"])
        estimates = pd.concat([earlier, estimates], ignore_index=True).query("replication in @both")
    truth = results[0][1]                       # the design's truth: the same in every replication
    summary = summarize_study(estimates, {name: truth for name in estimates["scenario"].unique()})
    differences = paired_differences(estimates, truth, estimates["scenario"].iloc[0])
    estimates.to_csv(out.with_suffix(".estimates.csv"), index=False)
    pd.concat([seconds for _, _, seconds in results]).to_csv(out.with_suffix(".seconds.csv"), index=False)
    summary.to_csv(out, index=False)
    differences.to_csv(out.with_suffix(".differences.csv"), index=False)
    return summary, differences


if __name__ == "__main__":
    main()
