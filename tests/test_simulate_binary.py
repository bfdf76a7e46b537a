"""data.simulate.outcome: binary: a 0/1 ``passed`` from the logistic mixed model of the vignette's predictors, with
its truth on the logit scale; and the Gaussian outcome exactly as before."""
import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlmi.data.simulate import COLUMNS, DEFAULTS, simulate_hsb, simulated_columns
from mlmi.fit.glmm import fit_glmm
from mlmi.run.inputs import InputError, check_inputs, schema_problem

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())
SEED = 20261123
BINARY = {"outcome": "binary"}
FORMULA = "passed ~ minority + female + ses + meanses + (1 + ses | schid)"


def data_hash(data) -> str:
    """sha256 of the column names and the raw bytes of every column."""
    digest = hashlib.sha256()
    for column in data.columns:
        digest.update(column.encode())
        digest.update(data[column].to_numpy().tobytes())
    return digest.hexdigest()


def test_the_gaussian_outcome_is_unchanged_to_the_byte():
    # Frozen from the generator before the binary outcome existed (commit b9afaf4): 20 schools, seed SEED.
    data, _ = simulate_hsb({"n_schools": 20}, np.random.default_rng(SEED))
    assert data_hash(data) == "0daeb91cce7cd900b7d3be0427404e3a15d5509cf4c25c640d38360a7add2879"


def test_columns_dtypes_and_the_same_students():
    gaussian, _ = simulate_hsb({"n_schools": 30}, np.random.default_rng(SEED))
    binary, _ = simulate_hsb({"n_schools": 30, **BINARY}, np.random.default_rng(SEED))
    assert list(binary.columns) == simulated_columns(BINARY) == [
        "schid", "minority", "female", "ses", "passed", "size", "schtype", "meanses"]
    assert simulated_columns({}) == COLUMNS
    assert str(binary["passed"].dtype) == "int64" and set(binary["passed"]) == {0, 1}
    predictors = [c for c in COLUMNS if c != "mathach"]          # drawn before the outcome: the same students
    assert binary[predictors].equals(gaussian[predictors])


def test_truth_is_on_the_logit_scale():
    _, truth = simulate_hsb({"n_schools": 5, **BINARY, "binary": {"sd_ses": 0.3, "fixed_effects": {"ses": 0.7}}},
                            np.random.default_rng(1))
    assert truth == {
        "fixed_effects": {"(Intercept)": 0.39, "minority": -0.85, "female": -0.37, "ses": 0.7, "meanses": 0.93},
        "random_effects": {"group": "schid", "sd": {"(Intercept)": 0.47, "ses": 0.3},
                           "cor": {"(Intercept).ses": -0.63}},
        "sigma": None, "family": "binomial", "link": "logit"}


def test_defaults_are_the_vignette_model_read_as_mathach_above_its_mean():
    # A logistic residual with the Gaussian one's SD (5.98) has scale 5.98 sqrt(3) / pi: each binary coefficient
    # and SD is the Gaussian one over that scale (the intercept from 14.05 - 12.75), to 2 decimals.
    scale = DEFAULTS["sigma"] * np.sqrt(3) / np.pi
    binary, gaussian = DEFAULTS["binary"], DEFAULTS["fixed_effects"]
    expected = {**{term: value / scale for term, value in gaussian.items()},
                "(Intercept)": (gaussian["(Intercept)"] - 12.75) / scale}
    for term, value in expected.items():
        assert binary["fixed_effects"][term] == pytest.approx(value, abs=0.005), term
    assert binary["sd_intercept"] == pytest.approx(DEFAULTS["sd_intercept"] / scale, abs=0.005)
    assert binary["sd_ses"] == pytest.approx(DEFAULTS["sd_ses"] / scale, abs=0.005)
    assert binary["cor_intercept_ses"] == DEFAULTS["cor_intercept_ses"]


def test_about_half_pass():
    data, _ = simulate_hsb({"n_schools": 160, **BINARY}, np.random.default_rng(SEED))
    assert abs(data["passed"].mean() - 0.5) <= 0.05     # expected ~0.50; sampling SD ~0.02 (school clustering)


def test_recovers_the_logit_scale_truth():
    # 400 schools (~18,000 students) fitted by the true model as glmer fits it: every fixed effect within 3 SEs of
    # the truth (over seeds 0-5 the z-scores had mean -0.05 to 0.2 per term and none beyond 2.0; a coefficient on
    # the wrong scale, e.g. the Gaussian one, would be off by tens of SEs).
    data, truth = simulate_hsb({"n_schools": 400, **BINARY}, np.random.default_rng(1))
    fit = fit_glmm(data, FORMULA, "binomial")
    for row in fit["fixed_effects"]:
        assert abs(row["estimate"] - truth["fixed_effects"][row["term"]]) <= 3 * row["std_error"], row["term"]
    assert fit["random_effects"]["sd"]["(Intercept)"] == pytest.approx(0.47, abs=0.1)


@pytest.mark.parametrize("settings, key", [({"binary": {"sigma": 1.0}}, "sigma"),
                                           ({"binary": {"fixed_effects": {"sex": 1.0}}}, "sex")])
def test_unknown_binary_key_is_an_error(settings, key):
    with pytest.raises(ValueError, match=key):
        simulate_hsb(settings, np.random.default_rng(0))


def binary_config(**model) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["data"]["simulate"]["outcome"] = "binary"
    config["model"].update({"formula": FORMULA, "reml": False, "family": "binomial", **model})
    return config


def test_a_binary_simulation_config_passes():
    config = binary_config()
    assert schema_problem(config, SCHEMA) is None
    assert check_inputs(config) == []


@pytest.mark.parametrize("model", [{"family": "gaussian", "reml": True}, {"link": "probit"}])
def test_the_binary_truth_needs_a_logit_model(model):
    with pytest.raises(InputError) as error:
        check_inputs(binary_config(**model))
    assert str(error.value).startswith("data.simulate.outcome binary: its truth is on the logit scale of a "
                                       "binomial model")


def test_schema_knows_the_outcomes():
    config = copy.deepcopy(DEFAULT)
    config["data"]["simulate"]["outcome"] = "ordinal"
    assert "outcome" in schema_problem(config, SCHEMA)
    config["data"]["simulate"].update(outcome="binary", binary={"sigma": 1.0})
    assert "sigma" in schema_problem(config, SCHEMA)


def test_the_gaussian_formula_on_binary_data_names_the_column():
    config = binary_config()
    config["model"].update(formula="mathach ~ ses + (1 | schid)")
    with pytest.raises(InputError, match=r"model.formula uses \['mathach'\], not among the columns"):
        check_inputs(config)


def test_a_binary_outcome_is_two_level_only():
    """The binary generator has no class level: outcome binary with n_classes stops at start-up in one line."""
    config = binary_config()
    config["data"]["simulate"]["n_classes"] = 3
    with pytest.raises(InputError) as error:
        check_inputs(config)
    assert str(error.value).startswith("data.simulate: outcome binary with n_classes: the binary outcome is "
                                       "simulated with two levels")
