"""The hsb-like generator against the margins of the real hsb (design §6) and its own truth."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from mlmi.data.simulate import COLUMNS, DEFAULTS, simulate_hsb

SEED = 20261123


@pytest.fixture(scope="module")
def hsb():
    return simulate_hsb({}, np.random.default_rng(SEED))


@pytest.fixture(scope="module")
def schools(hsb):
    data, _ = hsb
    return data.groupby("schid").agg(n=("ses", "size"), size=("size", "first"),
                                     schtype=("schtype", "first"), meanses=("meanses", "first"),
                                     female=("female", "mean"))


def test_columns_and_dtypes(hsb):
    data, _ = hsb
    assert list(data.columns) == COLUMNS
    assert {c: str(t) for c, t in data.dtypes.items()} == {
        "schid": "int64", "minority": "int64", "female": "int64", "ses": "float64",
        "mathach": "float64", "size": "int64", "schtype": "int64", "meanses": "float64"}
    assert data["schid"].is_monotonic_increasing
    assert data[["minority", "female", "schtype"]].isin([0, 1]).all().all()
    for column in ["size", "schtype", "meanses"]:    # school-level columns are constant in a school
        assert (data.groupby("schid")[column].nunique() == 1).all()


def test_school_margins(hsb, schools):
    data, _ = hsb
    assert len(schools) == 160
    assert schools["n"].between(14, 67).all()
    assert abs(schools["n"].mean() - 44.9) <= 3              # sampling SD of the mean ~0.9
    assert abs(len(data) - 7185) <= 0.05 * 7185              # sampling SD of the total ~150 (2%)
    assert schools["schtype"].sum() == 70                    # exactly round(0.4375 * 160)
    assert schools["size"].between(100, 2713).all()
    assert abs(schools["size"].mean() - 1098) <= 0.15 * 1098  # sampling SD of the mean ~48 (4%)


def test_ses_margins(hsb, schools):
    data, _ = hsb
    within = data["ses"] - data["meanses"]
    within_sd = np.sqrt((within**2).sum() / (len(data) - len(schools)))   # pooled, N - J df
    assert abs(schools["meanses"].std() - 0.41) <= 0.06      # expected ~0.42 (realised means), SD ~0.02
    assert abs(data["ses"].std() - 0.78) <= 0.05             # sampling SD ~0.014
    assert abs(within_sd - 0.66) <= 0.04                     # sampling SD ~0.006


def test_meanses_is_the_realised_school_mean(hsb):
    data, _ = hsb
    assert (data["meanses"] == data.groupby("schid")["ses"].transform("mean")).all()


def test_student_margins(hsb, schools):
    data, _ = hsb
    assert abs(data["minority"].mean() - 0.275) <= 0.04      # exact by construction (+-1 student)
    assert abs(np.corrcoef(data["minority"], data["ses"])[0, 1] + 0.27) <= 0.06   # sampling SD ~0.025
    assert abs(data["female"].mean() - 0.528) <= 0.03        # sampling SD ~0.005
    assert (schools["female"] == 1).sum() >= 16               # round(0.10 * 160) girls' schools
    assert (schools["female"] == 0).sum() >= 12               # round(0.075 * 160) boys' schools


def test_mathach_margins(hsb):
    data, _ = hsb
    assert abs(data["mathach"].mean() - 12.75) <= 0.6        # expected ~12.66, sampling SD ~0.24
    assert abs(data["mathach"].std() - 6.88) <= 0.5          # expected ~6.92, sampling SD ~0.09


def test_truth_shape(hsb):
    _, truth = hsb
    assert truth == {
        "fixed_effects": {"(Intercept)": 14.05, "minority": -2.80, "female": -1.21, "ses": 1.92,
                          "meanses": 3.05},
        "random_effects": {"group": "schid", "sd": {"(Intercept)": 1.54, "ses": 0.58},
                           "cor": {"(Intercept).ses": -0.63}},
        "sigma": 5.98}


def test_truth_follows_settings():
    _, truth = simulate_hsb({"n_schools": 10, "fixed_effects": {"ses": 2.5}, "sigma": 4.0},
                            np.random.default_rng(1))
    assert truth["fixed_effects"] == {**DEFAULTS["fixed_effects"], "ses": 2.5}
    assert truth["sigma"] == 4.0


def test_reproducible_with_a_seed(hsb):
    data, truth = hsb
    again, truth_again = simulate_hsb({}, np.random.default_rng(SEED))
    pd.testing.assert_frame_equal(data, again)
    assert truth == truth_again
    other, _ = simulate_hsb({}, np.random.default_rng(SEED + 1))
    assert not data.equals(other)


def test_defaults_not_modified_by_a_partial_override():
    before = {**DEFAULTS, "fixed_effects": dict(DEFAULTS["fixed_effects"])}
    simulate_hsb({"n_schools": 5, "fixed_effects": {"ses": 0.0}}, np.random.default_rng(2))
    assert DEFAULTS == before


@pytest.mark.parametrize("settings, key", [({"n_school": 10}, "n_school"),
                                           ({"fixed_effects": {"sex": 1.0}}, "sex")])
def test_unknown_key_is_an_error(settings, key):
    with pytest.raises(ValueError, match=key):
        simulate_hsb(settings, np.random.default_rng(0))


@pytest.mark.parametrize("settings, name", [({"students_mean": 80}, "students"),
                                            ({"minority_ses_cor": -0.95}, "minority_ses_cor"),
                                            ({"girls_school_fraction": 0.7}, "female_rate")])
def test_impossible_settings_are_errors(settings, name):
    with pytest.raises(ValueError, match=name):
        simulate_hsb(settings, np.random.default_rng(0))


def test_recovers_the_fixed_effects():
    # One data set of 400 schools (~18,000 students) fitted by the true model with REML:
    # every fixed effect within 3 of its standard errors of the truth. A wrong parameter in the
    # generator would be off by many SEs; over 201 seeds the z-scores had mean ~0 and SD ~1, and
    # 1 data set in 201 had a term beyond 3 SEs. SEED itself is such a one (the realised mean of
    # its 400 school intercepts is -0.215, 2.8 of its SDs, so the intercept lands 3.7 SEs low);
    # hence SEED + 1 here.
    data, truth = simulate_hsb({"n_schools": 400}, np.random.default_rng(SEED + 1))
    fit = smf.mixedlm("mathach ~ minority + female + ses + meanses", data, groups=data["schid"],
                      re_formula="~ses").fit(reml=True)
    assert fit.converged
    for term, value in truth["fixed_effects"].items():
        name = "Intercept" if term == "(Intercept)" else term
        assert abs(fit.fe_params[name] - value) <= 3 * fit.bse_fe[name], term


def test_two_level_data_are_those_of_the_generator_before_three_levels():
    """Frozen: sha256 of the CSV text of simulate_hsb({}, default_rng(SEED)), made by the generator as it was
    before n_classes (commit b9afaf4); the three-level draws come after every two-level one."""
    data, _ = simulate_hsb({}, np.random.default_rng(SEED))
    digest = hashlib.sha256(data.to_csv(index=False).encode()).hexdigest()
    assert digest == "12fa9343481f73940b4c36b42ae9f268f634ee74777cdba86ea5382bbe8e938d"


@pytest.fixture(scope="module")
def three_level():
    return simulate_hsb({"n_schools": 80, "n_classes": 4, "sd_class": 2.0}, np.random.default_rng(SEED))


def test_three_levels_put_students_in_classes_within_schools(three_level, hsb):
    data, truth = three_level
    assert list(data.columns) == ["schid", "classid", *COLUMNS[1:]]
    assert (data.groupby("schid")["classid"].nunique() == 4).all()
    assert (data.groupby("classid")["schid"].nunique() == 1).all()            # ids unique across schools
    sizes = data.groupby("classid").size().to_numpy().reshape(80, 4)
    assert (sizes.max(axis=1) - sizes.min(axis=1) <= 1).all()                 # a school's classes nearly equal
    assert truth["random_effects"] == [
        {"group": "classid:schid", "sd": {"(Intercept)": 2.0}, "cor": {}},
        {"group": "schid", "sd": {"(Intercept)": 1.54, "ses": 0.58}, "cor": {"(Intercept).ses": -0.63}}]
    two_level, _ = simulate_hsb({"n_schools": 80}, np.random.default_rng(SEED))
    pd.testing.assert_frame_equal(data.drop(columns=["classid", "mathach"]), two_level.drop(columns="mathach"))
    class_effect = (data["mathach"] - two_level["mathach"]).groupby(data["classid"])
    assert (class_effect.max() - class_effect.min()).max() < 1e-12             # one intercept a class
    assert class_effect.first().std() == pytest.approx(2.0, rel=0.2)          # 320 draws: SE of the SD ~4%


def test_the_fit_recovers_the_class_sd(three_level):
    from mlmi.fit.lmer import fit_mixed

    data, _ = three_level
    fit = fit_mixed(data, "mathach ~ minority + female + ses + meanses + (1 + ses | schid) + (1 | schid:classid)")
    classes = next(term for term in fit["random_effects"] if term["group"] == "schid:classid")
    assert classes["sd"]["(Intercept)"] == pytest.approx(2.0, abs=0.5)


@pytest.mark.parametrize("n_classes", [1, 15])
def test_impossible_class_counts_are_errors(n_classes):
    with pytest.raises(ValueError, match=f"n_classes {n_classes}: give 0"):
        simulate_hsb({"n_schools": 5, "n_classes": n_classes}, np.random.default_rng(0))
