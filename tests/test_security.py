"""Issue 12: user text is data, never code, and outputs stay inside results/<scenario>/ (design §10).

A model formula is checked against an allow-list before formulaic reads any of it as Python, on
every path: the start-up check (``check_inputs``), study scenarios (``plan_study``), fit jobs
(``fit_mixed``), and the workflow under a dry run, ``--lint`` and a real run. Each hostile formula
below tries to make a file ``PWNED``; the tests check that it is refused in one line and that no
file was made. A scenario name cannot lead out of ``results/``.
"""
import copy
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.fit.formula import FormulaError, parse_formula
from mlmi.fit.lmer import fit_mixed
from mlmi.run.inputs import InputError, check_inputs, schema_problem
from mlmi.run.plan import NAME, scenarios
from mlmi.run.provenance import sha256
from mlmi.run.study import plan_study
from test_workflow import TINY, run_workflow, snakemake_command

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())
GOOD = "mathach ~ ses + (1 | schid)"
PAYLOAD = "__import__('os').system('touch PWNED')"

#: A fixed part that would run Python, and the piece the refusal names.
HOSTILE = [
    (f"I(ses + 0*{PAYLOAD})", "the name '__import__'"),
    (f"ses + {{{PAYLOAD}}}", "'{'"),                                     # formulaic's Python block
    ("ses.__class__", "the name 'ses.__class__'"),
    ("getattr(ses, ses)", "the function 'getattr'"),
    ("open('PWNED','w')", "\"'\""),                                     # text in quotes
    ("I(eval('1'))", "\"'\""),
    (f"poly(ses, degree={PAYLOAD})", "the name '__import__'"),
    ("poly(ses, degree=2)", "'poly(ses, degree=2)'"),                  # keyword arguments run Python too
    ("I(lambda: ses)", "'lambda: ses'"),
    ("I((lambda: 1)(ses))", "the function 'lambda: 1'"),
    ("ses[0]", "'['"),
    ("[ses for ses in ses]", "'['"),
    ("C(ses, contr.treatment(base=2))", "'C(ses, contr.treatment(base=2))'"),
    ("C(ses, np)", "'C(ses, np)'"),
    ("C(ses, contr.__class__)", "the name 'contr.__class__'"),
    ("np.random.seed(ses)", "the function 'np.random.seed'"),
    ("exec(ses)", "the function 'exec'"),
    ("I(C(ses))", "the function 'C'"),
    ("I(ses)(ses)", "the function 'I(ses)'"),
    ("abs(*ses)", "'*ses'"),
    ("log(**ses)", "'log(**ses)'"),
    ("I(ses == 1)", "'ses == 1'"),
    ("I(ses:ses)", "'ses:ses'"),
    ("ses; import os", "';'"),
    ("I(ses @ ses)", "'@'"),
    ("I(lambda)", "the name 'lambda'"),
]


def hostile(fixed: str) -> str:
    return f"mathach ~ {fixed} + (1 | schid)"


def refusal(formula: str, piece: str) -> re.Pattern:
    """The one-line message that refuses ``piece`` of ``formula``."""
    return re.compile(re.escape(f"model.formula {formula!r}: {piece} is not allowed; ") + r"[^\n]+\Z")


@pytest.mark.parametrize("fixed, piece", HOSTILE)
def test_a_formula_that_would_run_code_is_refused_on_every_path_and_runs_nothing(fixed, piece, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)                                    # where 'touch PWNED' would make its file
    formula, message = hostile(fixed), refusal(hostile(fixed), piece)
    with pytest.raises(FormulaError) as parsed:
        parse_formula(formula)
    assert message.match(str(parsed.value)), str(parsed.value)
    config = copy.deepcopy(DEFAULT)
    config["model"]["formula"] = formula
    with pytest.raises(InputError) as checked:                     # the workflow's start-up check
        check_inputs(config)
    assert message.match(str(checked.value)), str(checked.value)
    data = pd.DataFrame({"mathach": np.arange(8.0), "ses": np.arange(8.0) % 3, "schid": np.repeat([1, 2], 4)})
    with pytest.raises(FormulaError, match=re.escape(piece)):     # a fit job
        fit_mixed(data, formula)
    study = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, "grid": {"model.formula": [GOOD, formula]}}}
    with pytest.raises(InputError, match=r"^study scenario formula-\S+: model\.formula .* is not allowed; "):
        plan_study(study, SCHEMA)
    study["study"] = {"replications": 2, "scenarios": {"fine": {}, "evil": {"model": {"formula": formula}}}}
    with pytest.raises(InputError, match=r"^study scenario evil: model\.formula .* is not allowed; "):
        plan_study(study, SCHEMA)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_piece_is_said_before_the_grouping_the_imputation_cannot_take():
    """The multilevel sampler takes one grouping factor; a formula that would run code is refused for that first."""
    config = copy.deepcopy(DEFAULT)
    config["imputation"]["method"] = "multilevel"
    config["model"]["formula"] = f"mathach ~ I({PAYLOAD}) + (1 | schid) + (1 | schtype)"
    with pytest.raises(InputError, match="the name '__import__' is not allowed"):
        check_inputs(config)
    config["model"]["formula"] = "mathach ~ ses + (1 | schid) + (1 | schtype)"
    with pytest.raises(InputError, match="imputation.method multilevel models one grouping column"):
        check_inputs(config)


def payload_config(where: str, marker: Path) -> dict:
    """A config whose formula (the base one, or a study grid scenario's) would make ``marker``."""
    formula = f"mathach ~ I(ses + 0*__import__('os').system('touch {marker}')) + (1 | schid)"
    if where == "base":
        return {**TINY, "model": {"formula": formula}}
    return {**TINY, "study": {"replications": 2, "grid": {"model.formula": [GOOD, formula]}}}


@pytest.mark.parametrize("where", ["base", "study grid"])
@pytest.mark.parametrize("mode", [["-n"], ["--lint"], []], ids=["dry run", "lint", "run"])
def test_the_workflow_stops_a_formula_that_would_run_code_before_it_runs(where, mode, tmp_path):
    marker = tmp_path / "PWNED"
    done = run_workflow(tmp_path, payload_config(where, marker), extra=mode)
    said = [line for line in done.stderr.splitlines() if line.startswith("mlmi:")]
    assert done.returncode != 0 and len(said) == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert re.match(r"mlmi: (study scenario \S+: )?model\.formula .*: the name '__import__' is not allowed; ", said[0])
    assert not list(tmp_path.rglob("PWNED")) and not (tmp_path / "results").exists()
    assert "Building DAG" not in done.stdout + done.stderr


# ---- outputs stay inside results/<scenario>/ ----

#: A user's own files in the working directory, where a scenario named '..' used to write.
DECOYS = {"report.html": "<p>my own report</p>\n", "pooled/fixed_effects.csv": "term,estimate\nmine,1\n"}


def workdir_with_decoys(path: Path) -> Path:
    for name, text in DECOYS.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def snapshot(folder: Path) -> dict:
    """sha256 and modification time of every file under ``folder``."""
    return {path.relative_to(folder).as_posix(): (sha256(path), path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


def test_every_file_a_run_writes_lies_under_results_scenario_or_snakemake(tmp_path):
    workdir = workdir_with_decoys(tmp_path)
    command = snakemake_command(workdir, TINY)                     # writes extra.yaml, the user's config
    before = snapshot(workdir)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    after = snapshot(workdir)
    written = sorted(path for path in after if before.get(path) != after[path])
    assert "results/tiny/report.html" in written                   # the run did write
    assert [path for path in written if not path.startswith(("results/tiny/", ".snakemake/"))] == []
    assert all(path in after for path in before)                   # nothing removed
    for name, text in DECOYS.items():
        assert (workdir / name).read_text() == text


@pytest.mark.parametrize("scenario", ["..", "."])
def test_a_scenario_of_dots_is_refused_before_any_job(scenario, tmp_path):
    workdir = workdir_with_decoys(tmp_path)
    decoys = snapshot(workdir)
    done = run_workflow(workdir, {**TINY, "scenario": scenario})
    said = [line for line in done.stderr.splitlines() if line.startswith("mlmi:")]
    assert done.returncode != 0 and said == [
        f"mlmi: config key scenario: {scenario!r} is not allowed here; expected: name of the study, a folder name: "
        "letters, digits, '_', '.' and '-', not dots alone; outputs go to results/<scenario>/"], done.stderr[-3000:]
    after = snapshot(workdir)
    assert {path: after.get(path) for path in decoys} == decoys
    assert [path for path in after if path not in decoys and path != "extra.yaml"
            and not path.startswith(".snakemake/")] == []


@pytest.mark.parametrize("name", ["..", ".", "...", "a/b", "../x"])
def test_a_study_scenario_cannot_be_named_as_a_folder_outside_its_own(name):
    config = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, "scenarios": {name: {}}}}
    assert schema_problem(config, SCHEMA).startswith(f"config key study.scenarios: {name!r} is not allowed here; ")
    with pytest.raises(ValueError, match=re.escape(f"study: the scenario name {name!r} is not allowed; ")):
        scenarios(config["study"])


def test_grid_scenarios_are_named_as_folders_whatever_their_values():
    grid = {"model.formula": ["../..", "a/../b"], "missingness.prob./": [".."], "..": ["."]}
    assert all(re.fullmatch(NAME, name) for name in scenarios({"grid": grid}))


def test_the_run_wildcard_is_never_a_folder_of_dots():
    run = re.compile(rf"{NAME}(/{NAME}/rep_\d+)?")                 # the Snakefile's constraint of {run}
    for bad in ("..", ".", "...", "../x", "hsb/../rep_1", "hsb/./rep_1", "../../rep_1", "a/b"):
        assert not run.fullmatch(bad), bad
    for good in ("hsb", "h.s.b", "..a", "study/mar_ses-0.3/rep_12", "study/.x/rep_1"):
        assert run.fullmatch(good), good
    assert re.search(r"run=rf\"\{NAME\}\(/\{NAME\}/rep_\\d\+\)\?\"", (CONFIG.parent / "Snakefile").read_text())
