"""Sensitivity studies: scenario expansion, performance measures and their Monte Carlo SEs."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.data.simulate import simulate_hsb
from mlmi.fit.record import FitRecord
from mlmi.run.inputs import InputError
from mlmi.run.plan import data_key, dotted, merge, run_parts, scenario_key, scenarios
from mlmi.run.study import performance, plan_study, replication_estimates, study_terms, summarize_study, true_value

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())


def test_merge_and_dotted_keys():
    assert dotted("a.b.c", 1) == {"a": {"b": {"c": 1}}}
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge(base, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}                       # the base is not modified


def test_grid_expands_to_every_combination_with_readable_names():
    planned = scenarios({"grid": {"missingness.prob.ses": [0.05, 0.4], "missingness.mechanism": ["MCAR", "MAR"],
                                  "imputation.m": [5, 20]}})
    assert len(planned) == 8
    assert planned["ses-0.4_mechanism-MAR_m-20"] == {"missingness": {"prob": {"ses": 0.4}, "mechanism": "MAR"},
                                                     "imputation": {"m": 20}}


def test_named_scenarios_times_grid_and_name_clashes():
    planned = scenarios({"scenarios": {"a": {"seed": 1}, "b": {}}, "grid": {"imputation.m": [2, 3]}})
    assert list(planned) == ["a_m-2", "a_m-3", "b_m-2", "b_m-3"] and planned["a_m-3"]["seed"] == 1
    assert list(scenarios({"scenarios": {"only": {}}})) == ["only"]
    with pytest.raises(ValueError, match="both named"):
        scenarios({"grid": {"a.m": [1, "1"]}})              # both labelled m-1


def test_plan_study_checks_every_scenario():
    config = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, "grid": {"imputation.m": [2, 3]}}}
    planned = plan_study(config, SCHEMA)
    assert planned["m-3"]["imputation"]["m"] == 3 and "study" not in planned["m-3"]
    assert planned["m-3"]["imputation"]["exclude"] == ["schid", "meanses"]    # 'auto': the vignette's idvars
    explicit = copy.deepcopy(config)
    explicit["imputation"]["exclude"] = ["schid"]
    explicit["study"]["scenarios"] = {"vignette": {"imputation": {"exclude": "auto"}}}
    assert plan_study(explicit, SCHEMA)["m-2"]["imputation"]["exclude"] == ["schid", "meanses"]
    config["study"]["grid"] = {"imputation.mm": [2]}
    with pytest.raises(InputError, match="study scenario mm-2: config key imputation: Additional properties"):
        plan_study(config, SCHEMA)
    config["study"]["grid"] = {"imputation.m": [1]}
    with pytest.raises(InputError, match="study scenario m-1: config key imputation.m: 1 is less than"):
        plan_study(config, SCHEMA)
    config["data"]["source"] = "mine.csv"
    with pytest.raises(InputError, match="needs data.source: simulate"):
        plan_study(config, SCHEMA)
    assert plan_study(DEFAULT, SCHEMA) == {}


def test_scenario_keys_are_stable_and_distinct():
    assert scenario_key("ses-0.1") == scenario_key("ses-0.1") != scenario_key("ses-0.3")
    assert scenario_key("base") == 3233087073            # crc32 of b"base": frozen, seeds depend on it


def test_scenarios_that_differ_only_in_their_methods_share_their_data():
    """The multilevel study: three imputation methods by two mechanisms; data seeds pair the methods."""
    config = yaml.safe_load((CONFIG / "studies" / "multilevel.yaml").read_text())
    planned = plan_study(merge(DEFAULT, config), SCHEMA)
    keys = {name: data_key(scenario) for name, scenario in planned.items()}
    for mechanism in ("MCAR", "MAR"):
        same = {keys[name] for name in keys if name.endswith(f"mechanism-{mechanism}")}
        assert len(same) == 1, keys                                       # every method, one data set
    assert len(set(keys.values())) == 2                                   # the mechanisms' data differ
    assert data_key(planned[next(iter(planned))]) == data_key(copy.deepcopy(planned[next(iter(planned))]))


def test_performance_against_hand_computation():
    # Four replications of one term whose truth is 1.0.
    reps = pd.DataFrame({"estimate": [0.8, 1.1, 1.3, 0.8], "std_error": [0.2, 0.3, 0.2, 0.3],
                         "conf_low": [0.5, 0.5, 1.05, 0.3], "conf_high": [1.1, 1.7, 1.55, 1.3],
                         "fmi": [0.1, 0.2, 0.3, 0.4]})
    got = performance(reps, 1.0)
    mean, sd = 1.0, np.sqrt(((-0.2) ** 2 + 0.1**2 + 0.3**2 + (-0.2) ** 2) / 3)     # sd = sqrt(0.18 / 3)
    assert got["n_reps"] == 4 and got["mean_estimate"] == pytest.approx(mean)
    assert got["bias"] == pytest.approx(0.0, abs=1e-15) and got["bias_mcse"] == pytest.approx(sd / 2)
    assert got["emp_se"] == pytest.approx(sd) and got["emp_se_mcse"] == pytest.approx(sd / np.sqrt(6))
    assert got["model_se"] == pytest.approx(np.sqrt((0.04 + 0.09 + 0.04 + 0.09) / 4))
    assert got["rmse"] == pytest.approx(np.sqrt(0.18 / 4))
    squared = np.array([0.04, 0.01, 0.09, 0.04])
    assert got["rmse_mcse"] == pytest.approx(np.sqrt(((squared - 0.045) ** 2).sum() / 12) / (2 * np.sqrt(0.045)))
    assert got["coverage"] == 0.75 and got["coverage_mcse"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert got["width"] == pytest.approx((0.6 + 1.2 + 0.5 + 1.0) / 4)
    assert got["fmi"] == pytest.approx(0.25) and got["rel_bias"] == pytest.approx(0.0, abs=1e-15)


def test_point_estimates_alone_have_bias_but_no_coverage():
    reps = pd.DataFrame({"estimate": [1.5, 1.6], "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan,
                         "fmi": np.nan})
    got = performance(reps, 1.54)
    assert got["bias"] == pytest.approx(0.01) and np.isnan(got["coverage"]) and np.isnan(got["model_se"])


def test_model_se_is_over_the_replications_with_an_se():
    reps = pd.DataFrame({"estimate": [1.5, 1.6, 1.4], "std_error": [0.1, np.nan, 0.2], "conf_low": [1.3, np.nan, 1.0],
                         "conf_high": [1.7, np.nan, 1.8], "fmi": np.nan})
    got = performance(reps, 1.5)
    assert got["model_se"] == pytest.approx(np.sqrt((0.01 + 0.04) / 2)) and got["coverage_n"] == 2
    assert got["model_se_mcse"] == pytest.approx(np.sqrt(np.var([0.01, 0.04], ddof=1) / (4 * 2 * 0.025)))


def fit_record(shift: float) -> FitRecord:
    fixed = [{"term": "(Intercept)", "estimate": 14 + shift, "std_error": 0.2, "statistic": (14 + shift) / 0.2}]
    return FitRecord.from_fit({
        "fixed_effects": fixed, "random_effects": {"group": "schid", "sd": {"(Intercept)": 1.5 + shift}, "cor": {}},
        "sigma": 6.0, "variance_parameters": {"groups": ["schid", "Residual"],
                                              "terms": ["sd__(Intercept)", "sd__Observation"], "scales": ["log", "log"],
                                              "estimate": [np.log(1.5 + shift), np.log(6.0)],
                                              "vcov": [[0.01, 0.0], [0.0, 0.0004]], "problem": None}})


def test_replication_estimates_and_summary_by_method():
    pooled = pd.DataFrame({"term": ["(Intercept)"], "estimate": [14.1], "std_error": [0.25], "conf_low": [13.6],
                           "conf_high": [14.6], "fmi": [0.1]})
    groups = {"group": ["schid", "Residual"], "term": ["sd__(Intercept)", "sd__Observation"]}
    random_effects = pd.DataFrame({**groups, "estimate": [1.52, 6.0], "between_sd": [0.1, 0.05]})
    variance_components = pd.DataFrame({**groups, "estimate": [1.5, 6.0], "std_error": [0.15, 0.12],
                                        "conf_low": [1.2, 5.8], "conf_high": [1.9, 6.2], "fmi": [0.1, 0.05]})
    one = replication_estimates(pooled=pooled, random_effects=random_effects, variance_components=variance_components,
                                listwise=fit_record(0.2), complete=fit_record(0.0))
    pooled_sd = one[(one["method"] == "pooled") & (one["term"] == "sd__(Intercept)")].iloc[0]
    assert pooled_sd["estimate"] == 1.52 and pooled_sd["conf_low"] == 1.2   # merTools' mean, the log-scale interval
    assert sorted(set(one["method"])) == ["complete", "listwise", "pooled"]
    listwise = one[(one["method"] == "listwise") & (one["term"] == "(Intercept)")].iloc[0]
    assert listwise["conf_low"] == pytest.approx(14.2 - 1.959963984540054 * 0.2)
    estimates = pd.concat([one.assign(scenario="s", replication=r) for r in (1, 2)])
    truth = {"fixed_effects": {"(Intercept)": 14.0},
             "random_effects": {"group": "schid", "sd": {"(Intercept)": 1.5}, "cor": {}}, "sigma": 6.0}
    summary = summarize_study(estimates, {"s": truth}).set_index(["method", "term"])
    assert summary.loc[("listwise", "(Intercept)"), "bias"] == pytest.approx(0.2)
    assert summary.loc[("pooled", "(Intercept)"), "coverage"] == 1.0
    assert summary.loc[("complete", "sd__Observation"), "bias"] == pytest.approx(0.0)
    complete_sd = one[(one["method"] == "complete") & (one["term"] == "sd__(Intercept)")].iloc[0]
    assert complete_sd["conf_low"] == pytest.approx(1.5 * np.exp(-1.959963984540054 * 0.1))    # log-scale Wald
    assert summary.loc[("pooled", "sd__(Intercept)"), "coverage"] == 1.0
    assert summary.loc[("listwise", "sd__(Intercept)"), "coverage"] == 1.0


def test_coverage_counts_the_replications_with_an_interval():
    """A singular fit's SD has no interval: coverage over the others, their number in coverage_n."""
    reps = pd.DataFrame({"estimate": [1.5, 1.6, 0.0], "std_error": [0.1, 0.1, np.nan], "conf_low": [1.3, 1.55, np.nan],
                         "conf_high": [1.7, 1.8, np.nan], "fmi": [0.1, 0.1, 0.1]})
    got = performance(reps, 1.54)
    assert got["coverage_n"] == 2 and got["coverage"] == 0.5
    assert got["coverage_mcse"] == pytest.approx(np.sqrt(0.25 / 2)) and got["width"] == pytest.approx(0.325)


def test_parameters_of_several_factors_are_named_with_their_factor_and_find_their_truth():
    parameters = pd.DataFrame({"group": ["classid", "schid", "schid", "Residual"],
                               "term": ["sd__(Intercept)", "sd__(Intercept)", "sd__ses", "sd__Observation"]})
    named = list(study_terms(parameters))
    assert named == ["sd__(Intercept) (classid)", "sd__(Intercept) (schid)", "sd__ses (schid)", "sd__Observation"]
    assert list(study_terms(parameters.iloc[1:])) == ["sd__(Intercept)", "sd__ses", "sd__Observation"]  # one factor
    _, truth = simulate_hsb({"n_schools": 4, "n_classes": 2, "sd_class": 0.7}, np.random.default_rng(0))
    assert [true_value(truth, term) for term in named] == [0.7, 1.54, 0.58, 5.98]
    assert true_value(truth, "sd__(Intercept) (schid:classid)") == 0.7     # the same columns, another order
    assert true_value(truth, "sd__(Intercept) (item)") is None
    assert true_value(truth, "sd__(Intercept)") is None                    # two true factors have it: which?
    assert true_value(truth, "sd__ses") == 0.58 and true_value(truth, "meanses") == 3.05


def test_run_names_give_scenario_and_replication():
    assert run_parts("my_study/ses-0.1_m-5/rep_12") == ("ses-0.1_m-5", 12)
    assert run_parts("hsb") is None


def test_a_study_may_vary_the_imputation_method_and_its_settings():
    """Every scenario's imputation settings are its own, 'auto' lists resolved per scenario."""
    config = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, "scenarios": {
        "vignette": {}, "improved": {"imputation": {"cluster_predictors": True, "bootstrap": True}},
        "sizeless": {"imputation": {"exclude": ["size"]}}}, "grid": {"imputation.method": ["miceforest", "multilevel"]}}}
    planned = plan_study(config, SCHEMA)
    assert list(planned) == [f"{name}_method-{method}" for name in ("vignette", "improved", "sizeless")
                             for method in ("miceforest", "multilevel")]
    assert planned["improved_method-multilevel"]["imputation"]["method"] == "multilevel"
    assert planned["improved_method-miceforest"]["imputation"]["bootstrap"] is True
    assert planned["vignette_method-miceforest"]["imputation"]["level2"] == ["size", "schtype"]
    assert planned["vignette_method-multilevel"]["imputation"]["exclude"] == []        # 'auto' for the sampler
    assert planned["vignette_method-multilevel"]["imputation"]["level2"] == ["size", "schtype", "meanses"]
    assert planned["sizeless_method-miceforest"]["imputation"]["level2"] == ["schtype", "meanses"]
    config["study"]["grid"] = {"imputation.method": ["external"]}
    with pytest.raises(InputError, match="imputation.method external needs data.source"):
        plan_study(config, SCHEMA)


def test_the_multilevel_study_plans_every_method_and_mechanism():
    study = yaml.safe_load((CONFIG / "studies" / "multilevel.yaml").read_text())
    planned = plan_study(merge(DEFAULT, study), SCHEMA)
    assert sorted(planned) == sorted(f"{name}_mechanism-{mechanism}" for mechanism in ("MCAR", "MAR")
                                     for name in ("miceforest_vignette", "miceforest_improved", "multilevel"))
    assert {config["imputation"]["method"] for config in planned.values()} == {"miceforest", "multilevel"}
    assert all(config["missingness"]["level2"] == ["size"] and config["imputation"]["m"] == 10
               for config in planned.values())


@pytest.mark.parametrize("study, key", [
    ({"grid": {"pooling.mertools_legacy": [True, False]}}, "pooling.mertools_legacy"),
    ({"scenarios": {"a": {}, "b": {"data": {"source": "mine.csv"}}}}, "data.source"),
    ({"scenarios": {"b": {"scenario": "elsewhere"}}}, "scenario"),
])
def test_a_key_that_cannot_vary_per_scenario_is_refused_in_one_line(study, key):
    config = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, **study}}
    with pytest.raises(InputError) as raised:
        plan_study(config, SCHEMA)
    said = str(raised.value)
    assert said.startswith("study scenario ") and f": {key} cannot vary per scenario" in said and "\n" not in said


def test_a_scenario_may_vary_the_seed():
    config = copy.deepcopy(DEFAULT) | {"study": {"replications": 2, "scenarios": {"a": {}, "b": {"seed": 7}}}}
    planned = plan_study(config, SCHEMA)
    assert planned["b"]["seed"] == 7 and planned["a"]["seed"] == DEFAULT["seed"]
