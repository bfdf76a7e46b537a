"""model.family and its keys: checked before any job, one line naming the key or column; and what a GLMM run writes."""
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.fit.record import FitRecord
from mlmi.pool.rubin import exponentiated, pool, ratios
from mlmi.pool.summarize import random_effect_stats, varcorr
from mlmi.report.console import summary
from mlmi.run.inputs import InputError, check_inputs, schema_problem

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())
DATA = Path(__file__).parent / "data"


@pytest.fixture
def binary(tmp_path, monkeypatch):
    """A working directory with binary_slope.csv (x missing in a few rows) and a binomial config for it."""
    monkeypatch.chdir(tmp_path)
    data = pd.read_csv(DATA / "binary_slope.csv")
    data.loc[[3, 50, 400], "x"] = np.nan
    data.to_csv("binary.csv", index=False)
    config = copy.deepcopy(DEFAULT)
    config["data"]["source"] = "binary.csv"
    config["model"].update(formula="y ~ x + z + (1 + x | g)", reml=False, family="binomial")
    return config


def message(config) -> str:
    with pytest.raises(InputError) as error:
        check_inputs(config)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_comparison_of_generalized_models_is_one_line(binary):
    """pooling.compare's D2 and D3 are for linear mixed models (D3's likelihood is a Gaussian one)."""
    binary["pooling"]["compare"] = [{"name": "no_x", "formula": "y ~ z + (1 + x | g)"}]
    assert message(binary).startswith("pooling.compare: D2 and D3 compare linear mixed models, and model.family "
                                      "is binomial")


def test_a_binomial_config_passes(binary):
    assert schema_problem(binary, SCHEMA) is None
    assert check_inputs(binary) == []


@pytest.mark.parametrize("change, expected", [
    ({"reml": True}, "model.reml: true, but family binomial is fitted as glmer fits it"),
    ({"link": "log"}, "model.link 'log': family binomial takes logit or probit"),
    ({"nagq": 5}, "model.nagq 5: more than 1 quadrature point needs a single, scalar random effect"),
    ({"family": "poisson"}, None),                     # 0/1 are counts too
    ({"formula": "x ~ z + (1 | g)"}, "binary.csv: model.formula: response 'x' must be 0/1 for family binomial"),
    ({"weights": "nowhere"}, "binary.csv: model.weights 'nowhere' is not among the columns"),
])
def test_family_keys_that_do_not_fit_are_one_line(binary, change, expected):
    binary["model"].update(change)
    if expected is None:
        assert check_inputs(binary) == []
    else:
        assert message(binary).startswith(expected)


def test_a_binomial_config_of_several_random_terms_runs_with_miceforest_only(binary):
    """Several random terms are glmer's as they are lmer's (an observation-level effect too: glmer checks no
    levels against rows); the multilevel sampler takes one grouping column, said at start-up in one line."""
    data = pd.read_csv("binary.csv")
    data.assign(obs=np.arange(len(data))).to_csv("binary.csv", index=False)
    binary["model"]["formula"] = "y ~ x + z + (1 | g) + (0 + x | g) + (1 | obs)"
    binary["imputation"]["method"] = "miceforest"
    binary["imputation"]["exclude"] = ["obs"]
    assert check_inputs(binary) == []
    binary["imputation"]["method"] = "multilevel"
    assert message(binary).startswith("model.formula 'y ~ x + z + (1 | g) + (0 + x | g) + (1 | obs)': random terms "
                                      "(1 | g), (0 + x | g), (1 | obs), but imputation.method multilevel")


def test_gaussian_takes_no_glmm_keys_and_no_cbind(binary):
    binary["model"].update(family="gaussian", reml=True, link="logit")
    assert message(binary).startswith("model.link: only for family binomial or poisson")
    del binary["model"]["link"]
    binary["model"]["formula"] = "cbind(y, z) ~ x + (1 | g)"
    assert message(binary).startswith("model.formula: cbind(successes, failures) is a binomial response")


def test_the_simulated_gaussian_outcome_is_not_binomial():
    config = copy.deepcopy(DEFAULT)
    config["model"].update(reml=False, family="binomial")
    assert message(config).startswith("the simulated data: model.formula: response 'mathach' must be 0/1")


def test_a_missing_outcome_is_imputed_by_miceforest_listed_or_not(binary):
    """miceforest keeps a 0/1 outcome 0/1 as a category or by predictive mean matching (tests/test_impute_kinds.py)."""
    data = pd.read_csv("binary.csv")
    data.loc[[5, 9], "y"] = np.nan
    data.to_csv("binary.csv", index=False)
    assert check_inputs(binary) == []
    binary["imputation"]["categorical"] = ["y"]
    assert check_inputs(binary) == []


def test_schema_names_an_unknown_family():
    config = copy.deepcopy(DEFAULT)
    config["model"]["family"] = "gamma"
    assert "model.family" in schema_problem(config, SCHEMA)


@pytest.fixture(scope="module")
def glmm_fits():
    """Three fits of cbpp's model on bootstrap-like perturbations of cbpp (stand-ins for imputations)."""
    from mlmi.fit.glmm import fit_glmm

    data = pd.read_csv(DATA / "cbpp.csv")
    rng = np.random.default_rng(3)
    fits = []
    for _ in range(3):
        copy_ = data.copy()
        copy_["incidence"] = np.minimum(copy_["size"], copy_["incidence"] + rng.integers(0, 2, len(data)))
        made = fit_glmm(copy_, "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)")
        fits.append(FitRecord.from_fit(made))
    return fits


def test_pooled_glmm_has_no_residual_and_mice_dfcom(glmm_fits):
    pooled = pool(glmm_fits)
    assert (pooled["dfcom"] == 56 - 5).all()          # mice:::get.dfcom on glmer fits: df.residual
    assert "Residual" not in set(varcorr(glmm_fits)["grp"])
    assert "sd__Observation" not in set(random_effect_stats(glmm_fits)["term"])
    ratios = exponentiated(pooled)
    np.testing.assert_allclose(np.log(ratios["ratio"]), pooled["estimate"], rtol=1e-12)
    assert (ratios["conf_low"] < ratios["ratio"]).all() and (ratios["ratio"] < ratios["conf_high"]).all()


def pool_records(run: Path, fits: list, mertools_legacy: bool = False) -> dict:
    """A results folder made by the pool stage from ``fits`` (written as fits/imp_<k>.json; the first again as the
    listwise fit); the pooled tables' paths by key."""
    from mlmi.run.layout import pooled_tables
    from mlmi.run.stages import pool_fits

    (run / "fits").mkdir(parents=True)
    paths = []
    for k, fit in enumerate(fits, start=1):
        paths.append(run / "fits" / f"imp_{k}.json")
        paths[-1].write_text(json.dumps(fit.to_json()))
    (run / "fits" / "listwise.json").write_text(json.dumps({**fits[0].to_json(), "label": "listwise"}))
    outputs = pooled_tables(run, mertools_legacy=mertools_legacy)
    (run / "pooled").mkdir()
    pool_fits(paths, run / "fits" / "listwise.json", outputs)
    return outputs


def test_the_pool_stage_writes_the_odds_ratios_of_a_logit_model(tmp_path, glmm_fits):
    """pooled/ratios.csv: exp of each pooled estimate and of its interval's ends, term by term (mice's
    ``exponentiate = TRUE``, checked against mice itself in tests/test_glmm.py)."""
    outputs = pool_records(tmp_path / "results" / "cbpp", glmm_fits)
    table, fixed = pd.read_csv(outputs["ratios"]), pd.read_csv(outputs["fixed_effects"])
    assert list(table.columns) == ["term", "ratio", "conf_low", "conf_high"]
    assert list(table["term"]) == list(fixed["term"])
    np.testing.assert_allclose(table[["ratio", "conf_low", "conf_high"]],
                               np.exp(fixed[["estimate", "conf_low", "conf_high"]]), rtol=1e-12)


@pytest.mark.parametrize("raw", [{}, {"family": "binomial", "link": "probit"}])
def test_a_model_whose_coefficients_are_no_ratios_has_a_header_only(raw):
    """A linear model's or a probit's exp(coefficient) is no ratio: the table keeps its columns and no row."""
    table = ratios([FitRecord.from_fit(raw)] * 2)
    assert table.empty and list(table.columns) == ["term", "ratio", "conf_low", "conf_high"]


def test_summary_of_a_binomial_run_shows_odds_ratios(tmp_path, glmm_fits):
    """mlmi summary on a results folder of GLMM fits: glmer's model line and the odds ratios."""
    run = tmp_path / "results" / "cbpp"
    pool_records(run, glmm_fits)
    text = summary(run)
    assert text.startswith("Generalized linear mixed model (binomial family, logit link) fit by maximum likelihood "
                           "(Laplace approximation) on 3 imputed data sets")
    assert "Odds ratios (exp of the pooled estimates and intervals):" in text
    assert "Residual" not in text


def test_an_imputed_file_whose_response_does_not_fit_is_named(binary):
    """External imputations: every file's response must fit the family too (a 0/1 outcome imputed as 0.37)."""
    data = pd.read_csv("binary.csv")
    data.loc[[5, 9], "y"] = np.nan
    data.to_csv("binary.csv", index=False)
    for k in (1, 2):
        data.fillna({"x": 0.0, "y": 0.37 if k == 2 else 1.0}).to_csv(f"imp{k}.csv", index=False)
    binary["imputation"].update(method="external", files=["imp*.csv"])
    assert message(binary).startswith("imp2.csv: model.formula: response 'y' must be 0/1 for family binomial")


def test_a_glmm_s_axes_are_on_its_link_scale():
    """Figures label a GLMM's coefficients on the link's scale, not in the response's units."""
    from mlmi.report.figures import units

    fit = FitRecord.from_fit({"family": "binomial", "link": "logit"})
    assert units("passed", "(Intercept)", fit.link_scale) == "log odds of passed"
    assert units("passed", "ses", fit.link_scale) == "log odds of passed per unit of ses"
    assert units("mathach", "ses", FitRecord.from_fit({"reml": True}).link_scale) == "mathach per unit of ses"
    assert FitRecord.from_fit({"family": "poisson", "link": "log"}).link_scale == "log rate"
