"""Summaries of fits with several grouping factors (issue 16): VarCorr, random-effect statistics, pooled
conditional modes (group, level, term), model info and the caterpillar plot, each per factor and term.

Two fits of the three-level data set (tests/data/three_level.csv, made by lme4_factors.R) with a school
slope beside nested classes stand for two imputations: the second with the outcome moved by a small
deterministic amount. Expected values are computed here from the records themselves (means over the
fits, Rubin's rules by hand), the shapes from lme4's as.data.frame(VarCorr()) (lme4_factors.json).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool import summarize
from mlmi.report import figures

DATA = Path(__file__).parent / "data"
FORMULA = "y ~ x + w + (1 + x | school) + (1 | school:class)"


@pytest.fixture(scope="module")
def fits():
    data = pd.read_csv(DATA / "three_level.csv")
    moved = data.assign(y=data["y"] + 0.3 * np.sin(np.arange(len(data))))
    return [FitRecord.from_fit(fit_mixed(data, FORMULA)), FitRecord.from_fit(fit_mixed(moved, FORMULA))]


def test_varcorr_has_lme4s_rows_averaged_over_fits(fits):
    lme4 = json.loads((DATA / "lme4_factors.json").read_text())["nested_slope"]["varcorr"]
    table = summarize.varcorr(fits)
    assert list(table["grp"]) == lme4["grp"]
    assert [None if pd.isna(v) else v for v in table["var1"]] == lme4["var1"]
    assert [None if pd.isna(v) else v for v in table["var2"]] == lme4["var2"]
    school = [fit.raw["random_effects"][1] for fit in fits]
    assert table["sdcor"].iloc[2] == pytest.approx(np.mean([re["sd"]["x"] for re in school]), rel=1e-12)
    assert table["sdcor"].iloc[3] == pytest.approx(np.mean([re["cor"]["(Intercept).x"] for re in school]), rel=1e-12)


def test_random_effect_stats_keep_each_factors_terms_apart(fits):
    stats = summarize.random_effect_stats(fits)
    assert list(zip(stats["group"], stats["term"])) == [
        ("school:class", "sd__(Intercept)"), ("school", "sd__(Intercept)"), ("school", "sd__x"),
        ("school", "cor__(Intercept).x"), ("Residual", "sd__Observation")]
    classes = [fit.raw["random_effects"][0]["sd"]["(Intercept)"] for fit in fits]
    assert stats["between_sd"].iloc[0] == pytest.approx(np.std(classes, ddof=1), rel=1e-12)


def test_pooled_conditional_modes_per_group_level_and_term(fits):
    pooled = summarize.pool_ranef(fits)
    assert len(pooled) == 100 * 1 + 25 * 2
    row = pooled[(pooled["group"] == "school") & (pooled["level"] == "s07") & (pooled["term"] == "x")].iloc[0]
    term = [fit.raw["ranef"][1] for fit in fits]
    i = term[0]["levels"].index("s07")
    modes = np.array([t["modes"][i][1] for t in term])
    variances = np.array([t["cond_var"][i][1][1] for t in term])
    assert row["estimate"] == pytest.approx(modes.mean(), rel=1e-12)
    assert row["std_error"] == pytest.approx(np.sqrt(variances.mean() + 1.5 * modes.var(ddof=1)), rel=1e-12)
    assert pooled.loc[pooled["group"] == "school:class", "level"].iloc[0] == "s01:1"


def test_model_info_counts_factors_and_groups_per_factor(fits):
    info = summarize.model_info({"1": fits[0], "2": fits[1]})
    assert list(info["n_levels"]) == [2, 2]
    assert list(info["n_groups"]) == ["school:class 100; school 25"] * 2


def test_caterpillar_has_a_panel_per_factor_and_term(fits):
    figure = figures.caterpillar_plot(summarize.pool_ranef(fits), "y")
    shown = [(ax.get_title(loc="left"), ax.get_xlabel()) for ax in figure.axes if ax.get_visible()]
    assert shown == [("(Intercept)", "school:class levels, ranked by conditional mode"),
                     ("(Intercept)", "school levels, ranked by conditional mode"),
                     ("x", "school levels, ranked by conditional mode")]


def test_random_effects_plot_names_each_parameters_factor(fits):
    figure = figures.random_effects_plot({"1": fits[0], "2": fits[1]}, fits[0], summarize.random_effect_stats(fits),
                                         None, "y")
    titles = [ax.get_title(loc="left") for ax in figure.axes if ax.get_visible()]
    assert titles == ["sd__(Intercept) (school:class)", "sd__(Intercept) (school)", "sd__x (school)",
                      "cor__(Intercept).x (school)", "sd__Observation (Residual)"]
