"""Several grouping factors through the whole workflow (issue 16): a three-level study on simulated data
(students in classes in schools, miceforest) and a user's three-level data with imputations made elsewhere,
each run by Snakemake end to end on tiny sizes."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_workflow import finished

from mlmi.data.simulate import simulate_hsb
from mlmi.report.console import summary
from mlmi.report.run_report import random_context
from mlmi.run.io import read_json
from mlmi.run.study import true_value

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = yaml.safe_load((REPO / "config" / "studies" / "three_level.yaml").read_text())
#: The example study at test size: 12 schools of 3 classes, m = 2, one scenario of 2 replications.
STUDY = {**copy.deepcopy(EXAMPLE), "scenario": "three_tiny",
         "data": {"simulate": {**EXAMPLE["data"]["simulate"], "n_schools": 12, "n_classes": 3}},
         "imputation": {"m": 2, "iterations": 1}, "study": {"replications": 2, "scenarios": {"mcar": {}}}}
#: The class SD as the study names it: its formula's class factor is schid:classid (the truth's classid:schid).
CLASS_SD = "sd__(Intercept) (schid:classid)"
#: The nested formula, written with '/', for the user's data.
NESTED = "mathach ~ minority + ses + (1 | schid/classid)"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return finished(tmp_path_factory.mktemp("three_study"), STUDY)


def user_files(folder: Path) -> dict:
    """A user's three-level data with ses and minority missing, and two files imputed elsewhere (the holes
    filled with different values); the config that runs them."""
    data, _ = simulate_hsb({"n_schools": 12, "n_classes": 3}, np.random.default_rng(5))
    data = data.round(4)
    holes = np.random.default_rng(6).random((len(data), 2)) < 0.15
    incomplete = data.assign(ses=data["ses"].mask(holes[:, 0]), minority=data["minority"].mask(holes[:, 1]))
    incomplete.to_csv(folder / "data.csv", index=False)
    for k in (1, 2):
        fill = np.random.default_rng(10 + k)
        incomplete.assign(ses=incomplete["ses"].fillna(pd.Series(fill.normal(size=len(data))).round(4)),
                          minority=incomplete["minority"].fillna(pd.Series(fill.integers(0, 2, len(data))))) \
            .to_csv(folder / f"imp{k}.csv", index=False)
    return {"scenario": "three_user", "data": {"source": "data.csv"}, "model": {"formula": NESTED},
            "imputation": {"method": "external", "files": ["imp*.csv"]}}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three_user")
    return finished(folder, user_files(folder))


def test_each_replications_pooled_tables_have_both_factors(study):
    run = study / "mcar" / "rep_1"
    random = pd.read_csv(run / "pooled" / "random_effects.csv")
    assert list(zip(random["group"], random["term"])) == [         # lme4's order: the most levels first
        ("schid:classid", "sd__(Intercept)"), ("schid", "sd__(Intercept)"), ("schid", "sd__ses"),
        ("schid", "cor__(Intercept).ses"), ("Residual", "sd__Observation")]
    varcorr = pd.read_csv(run / "pooled" / "varcorr.csv")
    assert list(dict.fromkeys(varcorr["grp"])) == ["schid:classid", "schid", "Residual"]
    ranef = pd.read_csv(run / "pooled" / "ranef.csv")
    assert ranef.groupby("group", sort=False)["level"].nunique().to_dict() == {"schid:classid": 36, "schid": 12}
    info = pd.read_csv(run / "pooled" / "model_info.csv")
    assert (info["n_levels"] == 2).all() and (info["n_groups"] == "schid:classid 36; schid 12").all()
    text = summary(run)
    assert " schid:classid (Intercept)" in text and "groups: schid:classid, 36, schid, 12" in text


def test_the_class_sd_is_in_the_truth_and_the_study_summary(study):
    truth = read_json(study / "mcar" / "rep_1" / "data" / "truth.json")
    assert truth["random_effects"][0] == {"group": "classid:schid", "sd": {"(Intercept)": 1.5}, "cor": {}}
    assert true_value(truth, CLASS_SD) == 1.5                  # schid:classid is classid:schid, the truth's name
    assert true_value(truth, "sd__(Intercept) (schid)") == truth["random_effects"][1]["sd"]["(Intercept)"]
    summary_table = pd.read_csv(study / "summary.csv")
    rows = summary_table[summary_table["term"] == CLASS_SD]
    assert sorted(rows["method"]) == ["complete", "listwise", "pooled"]
    assert np.allclose(rows["bias"], rows["mean_estimate"] - 1.5) and (rows["n_reps"] == 2).all()
    assert {"sd__(Intercept) (schid)", "sd__ses (schid)", "cor__(Intercept).ses (schid)", "sd__Observation",
            "ses"} <= set(summary_table["term"])
    assert CLASS_SD in (study / "study.html").read_text()


def test_a_users_three_level_data_with_external_imputations(user_run):
    random = pd.read_csv(user_run / "pooled" / "random_effects.csv")
    assert list(random["group"]) == ["classid:schid", "schid", "Residual"]
    ranef = pd.read_csv(user_run / "pooled" / "ranef.csv")
    assert ranef.groupby("group", sort=False)["level"].nunique().to_dict() == {"classid:schid": 36, "schid": 12}
    info = pd.read_csv(user_run / "pooled" / "model_info.csv")
    assert list(info["imputation"].astype(str)) == ["1", "2", "listwise"] and (info["n_levels"] == 2).all()
    fixed = pd.read_csv(user_run / "pooled" / "fixed_effects.csv")
    assert (fixed["b"] > 0).all()                               # the two files differ where the data miss
    page = (user_run / "report.html").read_text()
    assert page.count('alt="caterpillar plot') == 1 and "classid:schid" in page
    assert "groups: classid:schid, 36, schid, 12" in summary(user_run)


def test_the_report_gives_each_factors_sd_its_truth():
    _, truth = simulate_hsb({"n_schools": 4, "n_classes": 2, "sd_class": 0.7}, np.random.default_rng(0))
    random = pd.DataFrame({"group": ["schid:classid", "classid", "schid", "schid", "Residual", "item"],
                           "term": ["sd__(Intercept)"] * 4 + ["sd__Observation", "sd__(Intercept)"],
                           "estimate": [0.6, 0.6, 1.4, 0.5, 6.0, 1.0], "between_sd": [0.1] * 6})
    random.loc[3, "term"] = "sd__ses"
    stats = random_context(pd.DataFrame({"grp": []}), random, pd.DataFrame({"group": [], "level": []}), truth,
                           {"random_effects": "", "caterpillar": ""})["stats"]
    assert [cells[2] for _, cells in stats.rows] == ["0.7", "0.7", "1.54", "0.58", "5.98", "—"]   # no item truth
