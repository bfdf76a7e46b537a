"""What is imputed how: one row per incomplete column, and the config change where the imputation
model cannot carry the analysis model (design §9)."""
import numpy as np
import pandas as pd
import pytest

from mlmi.fit.formula import parse_formula
from mlmi.impute.models import COLUMNS, imputation_models, method_settings

VIGNETTE = {"method": "miceforest", "iterations": 5, "exclude": ["schid", "meanses"],
            "categorical": ["minority", "female"], "level2": ["size", "schtype"], "cluster_means": {},
            "bootstrap": False, "cluster_predictors": False, "burn_in": 1000}
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"


@pytest.fixture(scope="module")
def hsb():
    """hsb-like columns, 12 schools of 10: minority, ses, size and meanses with holes."""
    rng = np.random.default_rng(2)
    school = np.repeat(np.arange(12), 10)
    data = pd.DataFrame({"schid": school, "minority": rng.binomial(1, 0.3, 120).astype(float),
                         "female": rng.binomial(1, 0.5, 120).astype(float), "ses": rng.normal(size=120),
                         "mathach": rng.normal(12, 6, 120), "size": rng.integers(100, 2000, 12)[school].astype(float),
                         "schtype": rng.binomial(1, 0.4, 12)[school]})
    data["meanses"] = data.groupby("schid")["ses"].transform("mean")
    for column in ("minority", "ses", "size", "meanses"):
        data.loc[rng.random(120) < 0.2, column] = np.nan
    return data


def models(hsb, formula=FORMULA, **changes):
    return imputation_models({**VIGNETTE, **changes}, parse_formula(formula), hsb).set_index("variable")


def test_the_vignette_cannot_carry_the_random_ses_slope(hsb):
    table = models(hsb)
    assert list(table.reset_index().columns) == COLUMNS and list(table.index) == ["minority", "ses", "size",
                                                                                  "meanses"]
    ses = table.loc["ses"]
    assert ses["level"] == 1 and ses["in_model"] and not ses["carries_model"]
    assert ses["warning"] == ("ses has a random slope in model.formula but miceforest imputes it without one: "
                              "set imputation.method: multilevel")
    assert ses["imputed_by"].startswith("miceforest, single-level, from minority, female, mathach, size")
    assert table.loc["minority", "warning"] == ("miceforest imputes minority without its schid: set "
                                                "imputation.cluster_predictors: true (or set imputation.method: "
                                                "multilevel)")
    size = table.loc["size"]                       # not in the model: no warning, but imputed at level 2
    assert size["level"] == 2 and not size["in_model"] and size["carries_model"] and size["warning"] == ""
    assert size["imputed_by"].startswith("its schid's observed value; a schid without one: miceforest on one row "
                                         "per schid from schtype and the schid means of minority, female, ses")
    meanses = table.loc["meanses"]                 # excluded, yet in the model: its holes stay
    assert meanses["level"] == 2 and not meanses["carries_model"]
    assert meanses["warning"].endswith("take it out of imputation.exclude")


def test_multilevel_carries_random_slopes_and_products(hsb):
    table = models(hsb, "mathach ~ minority + ses * female + (1 + ses | schid)", method="multilevel",
                   exclude=["schid"], cluster_means={"meanses": "ses"})
    assert table["carries_model"].all() and (table["warning"] == "").all()
    assert table.loc["ses", "imputed_by"].startswith("the multilevel sampler: its own model times the likelihood "
                                                     "of model.formula (random (Intercept) and ses by schid)")
    assert table.loc["meanses", "imputed_by"] == "recomputed as the schid mean of the imputed ses (passive)"
    assert table.loc["size", "imputed_by"].endswith("the multilevel sampler's level-2 model, once per schid")


def test_products_level2_per_row_and_cluster_predictors(hsb):
    table = models(hsb, "mathach ~ minority + female + ses:female + I(size^2) + (1 | schid)", level2=["schtype"],
                   cluster_predictors=True, bootstrap=True)
    assert table.loc["ses", "warning"] == ("ses enters model.formula in ses:female, which miceforest does not "
                                           "model: set imputation.method: multilevel")
    assert table.loc["size", "warning"] == "size enters model.formula in I(size^2), which miceforest does not " \
                                           "model: set imputation.method: multilevel"
    assert table.loc["minority", "carries_model"]                     # with the school means it knows its school
    assert table.loc["minority", "imputed_by"].endswith(
        "the schid means of minority, female, ses, mathach and size; trained on a bootstrap sample of schids")
    per_row = models(hsb, "mathach ~ size + (1 | schid)", level2=["schtype"], cluster_predictors=True)
    assert per_row.loc["size", "level"] == 2 and per_row.loc["size", "warning"] == (
        "size is constant within every schid in its observed values but is imputed per row: add it to "
        "imputation.level2 (or set imputation.level2: auto)")


def test_method_settings_are_the_keys_each_method_takes():
    assert method_settings(VIGNETTE) == {key: VIGNETTE[key] for key in (
        "iterations", "exclude", "categorical", "level2", "cluster_means", "bootstrap", "cluster_predictors")}
    assert method_settings({**VIGNETTE, "method": "multilevel"}) == {
        key: VIGNETTE[key] for key in ("burn_in", "exclude", "categorical", "level2", "cluster_means")}
