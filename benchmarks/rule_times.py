"""Print per-rule wall-clock times from a run's Snakemake benchmark files.

usage: python benchmarks/rule_times.py [results/<scenario>]   (default: results/hsb; a study's too)
"""
import sys
from pathlib import Path

import pandas as pd


def rule_times(results: Path) -> pd.DataFrame:
    """One row per rule: jobs, total and longest seconds, peak memory (MB) over its jobs.

    Every ``benchmarks`` folder under ``results`` counts, so a study's replications do too.
    """
    rows = []
    for tsv in sorted(tsv for folder in results.rglob("benchmarks") for tsv in folder.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "seconds": bench["s"].iloc[0], "max_rss_mb": bench["max_rss"].iloc[0]})
    if not rows:
        sys.exit(f"no benchmark files in a benchmarks folder under {results}: run the pipeline first")
    jobs = pd.DataFrame(rows)
    max_rss = pd.to_numeric(jobs["max_rss_mb"], errors="coerce")
    return jobs.assign(max_rss_mb=max_rss).groupby("rule", sort=False).agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), longest_s=("seconds", "max"),
        peak_rss_mb=("max_rss_mb", "max"))


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results/hsb")
    table = rule_times(results)
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"sum of job times: {table['total_s'].sum():.1f} s (the wall clock is shorter when jobs run in parallel)")


if __name__ == "__main__":
    main()
