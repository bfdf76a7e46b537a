"""mlmi's study methods beside R's multilevel imputations, on the same data sets (issue 13).

For a finished mlmi study folder (``results/<study>/<scenario>/rep_<r>/``), this

1. exports each replication's incomplete data (``data/missing.parquet``) as CSV to
   ``results/<study>/r_reference/<scenario>/rep_<r>/missing.csv``;
2. runs ``benchmarks/r_multilevel.R`` on each (jomo.lmer and mice 2l.pan, lmer fits pooled by
   ``mice::pool``), ``--jobs`` replications at a time, writing ``r_estimates.csv`` and
   ``r_timing.csv`` beside the CSV, and the settings used in ``r_settings.json``; a replication done
   with the same settings and seed is not run again, so an interrupted run resumes and a finished
   one only re-summarises;
3. summarises mlmi's methods (each replication's ``estimates.csv``) and R's together with
   ``mlmi.run.study.summarize_study`` (bias, relative bias, coverage, ... each with its Monte Carlo
   SE) into ``results/<study>/summary_with_r.csv``, over the replications R has finished, and
   prints bias, relative bias and coverage for the key terms, and R's seconds per imputation;
4. compares two methods replication by replication (``--pair``, default mlmi's and jomo.lmer):
   the difference of their relative biases and coverages with the paired Monte Carlo SE, into
   ``results/<study>/paired_with_r.csv``.

A study scenario's data sets are seeded from its data and missingness settings, so scenarios that
differ only in their methods share them; R's methods are summarised in each scenario they ran on,
beside that scenario's own methods. ``--scenarios`` chooses them: for a study whose scenarios are
imputation methods (``config/studies/multilevel.yaml``) ``--scenarios 'multilevel_*'`` puts jomo.lmer
and mice 2l.pan on the very data sets every mlmi method saw, a paired comparison at a third of the cost
of all scenarios.

Nothing is written outside ``results/<study>/``. Each replication's R seed is derived from
``--seed``, the scenario name and the replication number, so reruns give the same numbers.

Run (R with lme4, mice, jomo, pan, broom.mixed; Debian: r-cran-jomo r-cran-pan r-cran-mice
r-cran-lme4 r-cran-broom.mixed)::

    python benchmarks/multilevel_vs_r.py results/multilevel_study --scenarios 'multilevel_*' --m 10
    python benchmarks/multilevel_vs_r.py results/quick_study --m 3 --nburn 200 --nbetween 20 --maxit 3
"""
import argparse
import fnmatch
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from mlmi.run.plan import scenario_key
from mlmi.run.study import summarize_study, true_value

R_SCRIPT = Path(__file__).with_name("r_multilevel.R")
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
KEY_TERMS = ["(Intercept)", "minority", "female", "ses", "meanses", "sd__ses"]


def replications(study: Path) -> list[Path]:
    """Every replication folder of the study with incomplete data, in (scenario, replication) order."""
    found = [path.parents[1] for path in study.glob("*/rep_*/data/missing.parquet")]
    return sorted(found, key=lambda rep: (rep.parent.name, int(rep.name.removeprefix("rep_"))))


def r_folder(study: Path, rep: Path) -> Path:
    """Where R's input and output for one replication live: ``<study>/r_reference/<scenario>/rep_<r>``."""
    return study / "r_reference" / rep.parent.name / rep.name


def replication_seed(seed: int, rep: Path) -> int:
    """R's seed for one replication, from the base seed, the scenario name and the replication number."""
    return (seed * 1_000_003 + scenario_key(rep.parent.name) + int(rep.name.removeprefix("rep_"))) % 2_147_483_647


def export_csv(rep: Path, folder: Path) -> Path:
    """The replication's incomplete data as CSV (missing cells empty), written once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "missing.csv"
    if not path.exists():
        pd.read_parquet(rep / "data" / "missing.parquet").to_csv(path.with_suffix(".tmp"), index=False, na_rep="")
        path.with_suffix(".tmp").replace(path)
    return path


def run_r(csv: Path, *, seed: int, settings: dict) -> float:
    """Runs the R script on one CSV unless its outputs exist from the same settings and seed (``r_settings.json``);
    the wall time of the call (0 if skipped)."""
    estimates, timing, used = (csv.with_name(name) for name in ("r_estimates.csv", "r_timing.csv", "r_settings.json"))
    wanted = {**settings, "seed": seed}
    if estimates.exists() and timing.exists() and used.exists() and json.loads(used.read_text()) == wanted:
        return 0.0
    used.unlink(missing_ok=True)
    args = [f"{key}={value}" for key, value in settings.items()]
    start = time.perf_counter()
    done = subprocess.run(["Rscript", str(R_SCRIPT), f"input={csv}", f"output={estimates}.tmp",
                           f"timing={timing}.tmp", f"seed={seed}", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"R failed on {csv}:\n{done.stderr[-3000:]}")
    Path(f"{timing}.tmp").replace(timing)
    Path(f"{estimates}.tmp").replace(estimates)
    used.write_text(json.dumps(wanted, indent=1))
    return time.perf_counter() - start


def gather(study: Path, reps: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """mlmi's and R's estimates of the replications R has finished, R's timings, and each scenario's truth."""
    estimates, timings, truths = [], [], {}
    for rep in reps:
        folder = r_folder(study, rep)
        if not (folder / "r_estimates.csv").exists() or not (rep / "estimates.csv").exists():
            continue
        labels = {"scenario": rep.parent.name, "replication": int(rep.name.removeprefix("rep_"))}
        estimates += [pd.read_csv(rep / "estimates.csv").assign(**labels),
                      pd.read_csv(folder / "r_estimates.csv").assign(**labels)]
        timings.append(pd.read_csv(folder / "r_timing.csv").assign(**labels))
        truths.setdefault(rep.parent.name, json.loads((rep / "data" / "truth.json").read_text()))
    if not estimates:
        raise SystemExit(f"no replication of {study} has both mlmi's estimates.csv and R's r_estimates.csv")
    return pd.concat(estimates, ignore_index=True), pd.concat(timings, ignore_index=True), truths


def key_table(summary: pd.DataFrame, terms=KEY_TERMS) -> pd.DataFrame:
    """Bias, relative bias and coverage with their MCSEs for the key terms, one row per scenario, term and method."""
    shown = summary[summary["term"].isin(terms)].copy()
    shown["term"] = pd.Categorical(shown["term"], terms, ordered=True)

    def with_mcse(name, digits):
        return [f"{v:.{digits}f} ({e:.{digits}f})" if pd.notna(v) else "" for v, e in
                zip(shown[name], shown[f"{name}_mcse"])]

    table = pd.DataFrame({"scenario": shown["scenario"], "term": shown["term"], "method": shown["method"],
                          "n": shown["n_reps"], "bias (mcse)": with_mcse("bias", 3),
                          "rel_bias (mcse)": with_mcse("rel_bias", 3), "coverage (mcse)": with_mcse("coverage", 2)})
    return table.sort_values(["scenario", "term"], kind="stable")


def paired_table(estimates: pd.DataFrame, truths: dict, first: str, second: str, terms=KEY_TERMS) -> pd.DataFrame:
    """``first`` minus ``second`` on the same data sets: the difference of their relative biases and of
    their coverages, each with the paired Monte Carlo SE (the SD over replications of the per-replication
    difference over sqrt(R)), which is much smaller than either method's own MCSE when the two agree
    replication by replication. One row per scenario and term that both methods estimate."""
    rows = []
    for (scenario, term), group in estimates[estimates["term"].isin(terms)].groupby(["scenario", "term"]):
        truth = true_value(truths[scenario], term)
        wide = {m: g.set_index("replication") for m, g in group.groupby("method") if m in (first, second)}
        if truth is None or len(wide) < 2:
            continue
        a, b = (wide[m].loc[wide[first].index.intersection(wide[second].index)] for m in (first, second))
        error = (a["estimate"] - b["estimate"]).to_numpy() / abs(truth)
        covered = [((w["conf_low"] <= truth) & (truth <= w["conf_high"])).to_numpy(dtype=float) for w in (a, b)]
        hit = covered[0] - covered[1]
        n = len(error)
        rows.append({"scenario": scenario, "term": term, "n": n,
                     "rel_bias_diff": error.mean(), "rel_bias_diff_mcse": error.std(ddof=1) / np.sqrt(n),
                     "coverage_diff": hit.mean() if np.isfinite(hit).all() else np.nan,
                     "coverage_diff_mcse": hit.std(ddof=1) / np.sqrt(n) if np.isfinite(hit).all() else np.nan})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    """Export, run R, summarise: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path, help="a finished mlmi study folder, e.g. results/multilevel_study")
    parser.add_argument("--m", type=int, default=10, help="imputations per method (default 10)")
    parser.add_argument("--nburn", type=int, default=1000, help="jomo.lmer burn-in iterations (default 1000)")
    parser.add_argument("--nbetween", type=int, default=100, help="jomo.lmer iterations between imputations")
    parser.add_argument("--maxit", type=int, default=10, help="mice iterations (default 10)")
    parser.add_argument("--methods", default="jomo,mice_2l.pan", help="R methods, comma-separated")
    parser.add_argument("--formula", default=FORMULA, help="the analysis model (lme4 syntax)")
    parser.add_argument("--seed", type=int, default=13, help="base seed for R (default 13)")
    parser.add_argument("--jobs", type=int, default=2, help="R processes at a time (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N replications of each scenario")
    parser.add_argument("--pair", default="pooled,jomo",
                        help="two methods compared replication by replication (default: mlmi's 'pooled' and jomo)")
    parser.add_argument("--scenarios", nargs="+", default=["*"],
                        help="only the scenarios matching these patterns (shell-style, e.g. 'multilevel_*')")
    args = parser.parse_args(argv)

    reps = replications(args.study)
    reps = [rep for rep in reps if any(fnmatch.fnmatchcase(rep.parent.name, p) for p in args.scenarios)]
    if args.limit:
        reps = [rep for rep in reps if int(rep.name.removeprefix("rep_")) <= args.limit]
    if not reps:
        raise SystemExit(f"{args.study}: no <scenario>/rep_<r>/data/missing.parquet found")
    settings = {"m": args.m, "nburn": args.nburn, "nbetween": args.nbetween, "maxit": args.maxit,
                "methods": args.methods, "formula": args.formula}
    csvs = [export_csv(rep, r_folder(args.study, rep)) for rep in reps]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        walls = list(pool.map(lambda pair: run_r(pair[0], seed=replication_seed(args.seed, pair[1]),
                                                 settings=settings), zip(csvs, reps)))
    print(f"R ran on {sum(w > 0 for w in walls)} of {len(reps)} replications ({sum(walls):.0f} s of R processes)")

    estimates, timings, truths = gather(args.study, reps)
    summary = summarize_study(estimates, truths)
    out = args.study / "summary_with_r.csv"
    summary.to_csv(out, index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(key_table(summary).to_string(index=False))
        first, second = args.pair.split(",")
        paired = paired_table(estimates, truths, first, second)
        paired.to_csv(args.study / "paired_with_r.csv", index=False)
        print(f"\n{first} minus {second} on the same data sets (paired MCSE):")
        print(paired.round(4).to_string(index=False))
        print("\nR imputation time (imputation call only), seconds per imputation:")
        print(timings.groupby("method")[["seconds_per_imputation", "iterations", "singular_fits"]]
              .agg(["mean", "max"]).round(3).to_string())
    print(f"\nwrote {out}")


if __name__ == "__main__":
    sys.exit(main())
