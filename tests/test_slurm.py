"""The workflow on a cluster: profiles/slurm's grouping, and the default pipeline through a real Slurm (issue 8).

The Slurm test needs a running one-node cluster (`sudo bash tests/slurm/start.sh`) and the
`cluster` extra (`pip install -e ".[cluster]"`); without them it is skipped, unless
MLMI_REQUIRE_SLURM=1 (as .ci/run sets) makes that a failure.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_workflow import run_workflow

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
# The one-node cluster of tests/slurm/start.sh has no accounting database (profiles/slurm explains).
NO_ACCOUNTING = ("--slurm-status-command", "squeue", "--slurm-no-account")
PER_RUN_RULES = {"simulate", "ampute", "impute", "fit", "fit_listwise", "fit_complete", "pool", "replication"}
#: The rules a single analysis runs besides those (a study's replications make no report).
SINGLE_RUN_RULES = {"imputation_models", "report", "provenance"}
STUDY = {"scenario": "grouped_study", "data": {"simulate": {"n_schools": 15}}, "imputation": {"m": 3, "iterations": 1},
         "study": {"replications": 2, "grid": {"missingness.mechanism": ["MCAR", "MNAR"]}}}


def slurm_missing() -> str:
    """Why the Slurm test cannot run here, or '' when it can."""
    if shutil.which("sbatch") is None:
        return "sbatch not found: install Debian's slurm-wlm and munge, then run tests/slurm/start.sh as root"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if "UP" not in ping.stdout:
        return "Slurm is not answering (scontrol ping): start it with tests/slurm/start.sh as root"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[cluster]'"
    return ""


def profile_groups() -> dict[str, str]:
    """rule -> group, as profiles/slurm assigns them."""
    return yaml.safe_load((PROFILE / "config.yaml").read_text())["groups"]


def test_profile_makes_each_replication_one_cluster_job(tmp_path):
    groups = profile_groups()
    assert PER_RUN_RULES | SINGLE_RUN_RULES <= set(groups), "a per-run rule is left out of the group"
    assert "study_summary" not in groups, "study_summary would join every replication into one job"
    assignments = [f"{rule}={group}" for rule, group in groups.items()]
    done = run_workflow(tmp_path, STUDY, extra=["-n", "--groups", *assignments])
    assert done.returncode == 0, done.stderr[-3000:]
    replications = 2 * 2
    group_jobs = done.stdout.count("Group job run ")
    assert group_jobs == replications, f"{group_jobs} group jobs for {replications} replications"
    # everything else of the study is study_summary (the rest is in the groups) and the local rule all
    ungrouped = re.findall(r"^(?:local)?rule (\w+):", done.stdout, re.MULTILINE)
    assert sorted(ungrouped) == ["all", "study_summary"], ungrouped


def test_every_rule_gets_memory_and_runtime_from_the_workflow_profile(tmp_path):
    """profiles/default sets every rule's mem_mb and runtime (set-resources, one place), and every job of a
    study is planned with exactly those; the rules declare threads and no resources of their own."""
    declared = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())["set-resources"]
    sources = "".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    rules = set(re.findall(r"^\s*rule (\w+):", sources, re.M)) | set(re.findall(r"^use rule \w+ as (\w+)", sources, re.M))
    assert set(declared) == rules
    assert "resources:" not in sources and sources.count("threads:") == len(re.findall(r"^\s*rule \w+:", sources, re.M))
    done = run_workflow(tmp_path, STUDY, extra=["-n"])
    assert done.returncode == 0, done.stderr[-3000:]
    job = r"^\s*(?:local)?rule (\w+):\n(.*?)(?=^\s*(?:local)?rule |\Z)"
    jobs = re.findall(job, done.stdout, re.MULTILINE | re.DOTALL)
    assert {rule for rule, _ in jobs} >= PER_RUN_RULES | {"study_summary"}
    for rule, text in jobs:
        if rule != "all":
            resources = re.search(r"resources: (.*)", text).group(1)
            assert f"mem_mb={declared[rule]['mem_mb']}," in resources, (rule, resources)
            assert f"runtime={declared[rule]['runtime']}," in resources, (rule, resources)


def slurm_job_ids(output: str) -> list[str]:
    """The Slurm job ids the plugin reported submitting."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def slurmctld_log() -> str:
    """The controller's log, found through `scontrol show config`."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    return Path(re.search(r"^SlurmctldLogFile\s*=\s*(\S+)", config, re.MULTILINE).group(1)).read_text()


@pytest.mark.slurm
def test_default_pipeline_through_slurm_equals_a_local_run(tmp_path):
    reason = slurm_missing()
    if reason:
        if os.environ.get("MLMI_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "cluster"),
         "--profile", str(PROFILE), *NO_ACCOUNTING, "--slurm-init-seconds-before-status-checks", "2",
         "--slurm-keep-successful-logs"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    local = run_workflow(tmp_path / "local", {})
    output, _ = cluster.communicate(timeout=1200)
    assert local.returncode == 0, local.stderr[-3000:]
    assert cluster.returncode == 0, output[-4000:]

    # one cluster job ran the whole single analysis, and Slurm says it completed
    (job_id,) = slurm_job_ids(output)
    job = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in job and "ExitCode=0:0" in job, job
    assert f"_job_complete: JobId={job_id} WEXITSTATUS 0" in slurmctld_log()
    (slurm_log,) = (tmp_path / "cluster" / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log")
    ran = set(re.findall(r"^\s*rule (\w+):", slurm_log.read_text(), re.MULTILINE))
    assert ran == PER_RUN_RULES - {"fit_complete", "replication"} | SINGLE_RUN_RULES, ran

    local_tables = sorted((tmp_path / "local" / "results" / "hsb" / "pooled").glob("*.csv"))
    cluster_dir = tmp_path / "cluster" / "results" / "hsb" / "pooled"
    assert [table.name for table in local_tables] == sorted(table.name for table in cluster_dir.glob("*.csv"))
    for table in local_tables:
        assert table.read_bytes() == (cluster_dir / table.name).read_bytes(), table.name
