"""CPU seconds of one miceforest imputation with LightGBM forests of several sizes, the speed side of the
choice of ``mlmi.impute.miceforest.FOREST`` (docs/imputation-speed.md; the quality side is miceforest_variants.py).

Two data sets: the default run's incomplete data (simulated hsb, 160 schools, about 7,200 pupils, 5% of
minority, female, ses and size missing) and replication 1 of ``miceforest_variants.py``'s study design (60
schools, about 2,800 pupils, 30% of ses missing). Each imputation is the default config's (``impute`` with its
settings: cluster means as predictors, a bootstrap of schools, 5 iterations, one thread), seeds 1, 2, ...;
CPU seconds (``time.process_time``: the machine's load does not count) and the median of ``--repeats``.

    nice -n 19 python benchmarks/forest_size.py --repeats 3
"""
import argparse
import statistics
import time
from pathlib import Path
from unittest import mock

import yaml

import mlmi.impute.miceforest
from mlmi.data.ampute import ampute_from_config
from mlmi.data.simulate import simulate_hsb
from mlmi.impute.models import method_settings
from mlmi.run.inputs import imputation_roles
from mlmi.run.seeds import rng_for

from miceforest_variants import replication_data, variant_configs   # beside this script

REPO = Path(__file__).resolve().parents[1]
#: The forests timed: miceforest's own (48 trees of at most 128 leaves on 255 bins, 1 row per leaf at least),
#: and smaller ones.
CANDIDATES = {
    "miceforest's own (mlmi's)": {},
    "24 trees": {"num_iterations": 24},
    "16 trees": {"num_iterations": 16},
    "63 bins": {"max_bin": 63},
    "16 trees, 63 bins": {"num_iterations": 16, "max_bin": 63},
    "16 trees, 63 bins, 5 rows per leaf": {"num_iterations": 16, "max_bin": 63, "min_data_in_leaf": 5},
    "10 trees, 63 bins": {"num_iterations": 10, "max_bin": 63},
}


def default_run() -> tuple:
    """The default config's incomplete data, as its simulate and ampute jobs make it, and its config."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    complete, _ = simulate_hsb(config["data"]["simulate"], rng_for(config["seed"], "simulate"))
    missing = ampute_from_config(complete, config["missingness"], rng_for(config["seed"], "ampute"), group="schid")
    config["imputation"].update(imputation_roles(config))
    return missing, config


def study_replication() -> tuple:
    """Replication 1 of miceforest_variants' design (the default config's imputation settings), and its config."""
    config = variant_configs(["cluster_means_bootstrap"])["cluster_means_bootstrap"]
    return replication_data(config, 1)[2], config


def cpu_seconds(missing, config: dict, forest: dict, repeats: int) -> list[float]:
    """CPU seconds of ``repeats`` imputations of ``missing`` with ``forest`` as mlmi.impute.miceforest.FOREST."""
    imputation, formula = config["imputation"], config["model"]["formula"]
    seconds = []
    with mock.patch.dict(mlmi.impute.miceforest.FOREST, forest, clear=True):
        for seed in range(1, repeats + 1):
            start = time.process_time()
            mlmi.impute.miceforest.impute(imputation["method"], missing, formula, seed=seed,
                                          **method_settings(imputation))
            seconds.append(time.process_time() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for label, (missing, config) in {"default run": default_run(), "study replication": study_replication()}.items():
        cpu_seconds(missing, config, {}, 1)                     # warm-up: loads LightGBM
        for name, forest in CANDIDATES.items():
            seconds = cpu_seconds(missing, config, forest, args.repeats)
            print(f"{label} ({len(missing)} rows) | {name:<36} | median {statistics.median(seconds):.2f} CPU s | "
                  + " ".join(f"{s:.2f}" for s in seconds), flush=True)


if __name__ == "__main__":
    main()
