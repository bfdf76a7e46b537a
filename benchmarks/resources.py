"""Print, per rule, the peak memory and longest time its benchmark files show, the ``mem_mb`` / ``runtime``
to set from them, and what the workflow profile (profiles/default, ``set-resources``) sets now (issue 8:
resources from measurements, not guesses).

usage: python benchmarks/resources.py RESULTS [RESULTS ...]
       e.g. results/hsb (the default config) and results/quick_study (config/studies/quick.yaml)

Headroom rule: mem_mb = twice the peak RSS, rounded up to a multiple of 512 MB; runtime (minutes,
Slurm's unit) = five times the longest job, rounded up to a whole minute. Twice the memory covers
the full-size data of config/studies/realistic.yaml and m = 20; five times the time covers its
10 imputation iterations (twice the default's) on a node slower than this one.
"""
import math
import sys
from pathlib import Path

import pandas as pd
import yaml

from rule_times import rule_times

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "default" / "config.yaml"

MEMORY_FACTOR = 2
MEMORY_STEP_MB = 512
TIME_FACTOR = 5


def declared_resources(peak_rss_mb: float, longest_s: float) -> dict:
    """The mem_mb and runtime to set for a rule of a measured peak RSS (MB) and longest time (s)."""
    return {"mem_mb": MEMORY_STEP_MB * math.ceil(MEMORY_FACTOR * peak_rss_mb / MEMORY_STEP_MB),
            "runtime": max(1, math.ceil(TIME_FACTOR * longest_s / 60))}


def resources_table(results_dirs) -> pd.DataFrame:
    """Per rule over every run given: jobs, peak RSS, longest seconds, the resources to set, and the profile's."""
    runs = pd.concat([rule_times(Path(results)) for results in results_dirs])
    table = runs.groupby(level="rule").agg(jobs=("jobs", "sum"), peak_rss_mb=("peak_rss_mb", "max"),
                                           longest_s=("longest_s", "max"))
    declared = [declared_resources(row.peak_rss_mb, row.longest_s) for row in table.itertuples()]
    profile = pd.DataFrame.from_dict(yaml.safe_load(PROFILE.read_text())["set-resources"], orient="index")
    return table.join(pd.DataFrame(declared, index=table.index)).join(profile.add_prefix("profile_"))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(resources_table(sys.argv[1:]).to_string(float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
