"""Messy but valid data (issue 7, item 1): text categories and integer codes as predictors and
as imputed variables, missing-value codes, quoted column names, text and integer group ids,
CSV and Parquet alike; and the brandsma-like acceptance case run end to end by Snakemake."""
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed
from mlmi.impute.miceforest import impute_once
from mlmi.run import stages
from mlmi.run.inputs import check_inputs
from mlmi.run.tables import read_table
from test_workflow import finished

#: The brandsma-like model: a text category, an integer code as a factor, a random slope, text school ids.
FORMULA = "lpo ~ sex + iqv + ses + factor(den) + (1 + iqv | sch)"
#: The generating fixed effects, named as lme4 names them (reference levels: boy, den 1).
TRUTH = {"(Intercept)": 40.0, "sexgirl": 2.0, "iqv": 2.4, "ses": 0.15,
         "factor(den)2": 1.5, "factor(den)3": -1.0, "factor(den)4": 0.5}
#: Fraction of cells made missing (MCAR), as in mice::brandsma: several variables 10-20% missing.
MISSING = {"sex": 0.12, "iqv": 0.10, "ses": 0.15, "lpo": 0.10}


def brandsma_like(rng: np.random.Generator, n_schools: int = 80) -> pd.DataFrame:
    """Pupils in schools like R's mice::brandsma: ids "S017", sex "boy"/"girl", denomination 1-4.

    lpo = X beta + u0 + u1 iqv + e, with school SDs 3 (intercept) and 0.4 (iqv slope),
    correlation -0.5, residual SD 6.5; then MCAR holes in the columns of ``MISSING``.
    """
    sizes = rng.integers(10, 31, n_schools)
    ids = np.array([f"S{number:03d}" for number in rng.permutation(np.arange(1, 3 * n_schools))[:n_schools]])
    school = np.repeat(np.arange(n_schools), sizes)
    n = len(school)
    den = rng.choice([1, 2, 3, 4], n_schools, p=[0.35, 0.3, 0.25, 0.1])[school]
    sex = rng.choice(["boy", "girl"], n)
    iqv = np.round(0.6 * rng.normal(size=n_schools)[school] + 1.9 * rng.normal(size=n), 2)
    ses = np.round(3 * iqv + 9 * rng.normal(size=n), 1)
    cov = np.array([[9.0, -0.5 * 3 * 0.4], [-0.5 * 3 * 0.4, 0.16]])
    u = rng.multivariate_normal([0, 0], cov, n_schools)[school]
    fixed = (TRUTH["(Intercept)"] + TRUTH["sexgirl"] * (sex == "girl") + TRUTH["iqv"] * iqv + TRUTH["ses"] * ses
             + np.select([den == 2, den == 3, den == 4], [TRUTH[f"factor(den){d}"] for d in (2, 3, 4)], 0.0))
    lpo = np.round(fixed + u[:, 0] + u[:, 1] * iqv + 6.5 * rng.normal(size=n), 1)
    data = pd.DataFrame({"sch": ids[school], "sex": sex, "iqv": iqv, "ses": ses, "den": den, "lpo": lpo})
    for column, fraction in MISSING.items():
        data[column] = data[column].mask(rng.random(n) < fraction)
    return data


@pytest.fixture(scope="module")
def messy():
    return brandsma_like(np.random.default_rng(2024), n_schools=30)


def test_missing_values_as_empty_cells_na_nan_and_codes(tmp_path):
    (tmp_path / "codes.csv").write_text("g,x,sex\nS1,1.5,girl\nS1,,boy\nS2,NA,NA\nS2,NaN,-99\nS3,-99,.\nS3,-99.0,boy\n")
    data = read_table(str(tmp_path / "codes.csv"), na_values=[-99, "."])
    assert data["x"].isna().tolist() == [False, True, True, True, True, True]
    assert data["sex"].isna().tolist() == [False, False, True, True, True, False]
    assert pd.api.types.is_float_dtype(data["x"])                    # "-99" no longer keeps x from being numbers
    plain = read_table(str(tmp_path / "codes.csv"))
    assert plain["x"].tolist()[4:] == [-99.0, -99.0]                 # without na_values a code is a number
    coded = pd.DataFrame({"x": [1.0, -99.0, 2.0], "k": pd.array([1, -99, 3], dtype="Int64"),
                          "sex": ["girl", "-99", "."]})
    coded.to_parquet(tmp_path / "codes.parquet")
    again = read_table(str(tmp_path / "codes.parquet"), na_values=[-99, "."])
    assert again.isna().to_numpy().tolist() == [[False, False, False], [True, True, True], [False, False, True]]
    assert again["k"].dtype == "Int64"


def test_imputed_categories_are_observed_levels(messy):
    data = messy.copy()
    data["den"] = data["den"].mask(np.random.default_rng(1).random(len(data)) < 0.15)     # a numeric code with holes
    completed, chains = impute_once(data, seed=3, iterations=2, exclude=["sch"], categorical=["den"])
    holes = data.isna()
    assert not completed.isna().any().any()
    assert set(completed.loc[holes["sex"], "sex"]) == {"boy", "girl"}
    assert set(completed.loc[holes["den"], "den"]) <= set(data["den"].dropna()) and holes["den"].sum() > 30
    assert completed.dtypes.equals(data.dtypes)
    pd.testing.assert_frame_equal(completed[~holes.any(axis=1)], data[~holes.any(axis=1)])
    last = chains[chains["iteration"] == 2].set_index("variable")
    # a text category enters the chains by its level number: the mean is the share of "girl"
    assert last.loc["sex", "mean"] == pytest.approx((completed.loc[holes["sex"], "sex"] == "girl").mean(), rel=1e-12)


def test_csv_and_parquet_give_the_same_results(messy, tmp_path):
    messy.to_csv(tmp_path / "in.csv", index=False)
    messy.to_parquet(tmp_path / "in.parquet")
    fits = []
    for name in ("in.csv", "in.parquet"):
        stages.load(tmp_path / name, tmp_path / f"{name}.loaded.parquet")
        loaded = pd.read_parquet(tmp_path / f"{name}.loaded.parquet")
        completed, _ = impute_once(loaded, seed=5, iterations=2, exclude=["sch"])
        fit = fit_mixed(completed, FORMULA)
        fit.pop("fit_seconds")
        fits.append(fit)
    assert fits[0] == fits[1]


def test_text_and_integer_group_ids_give_the_same_fit_with_ids_as_given(messy):
    complete = messy.dropna().reset_index(drop=True)
    numbered = complete.assign(sch=complete["sch"].str[1:].astype(int))      # S017 -> 17
    by_text, by_number = fit_mixed(complete, FORMULA), fit_mixed(numbered, FORMULA)
    assert by_text["ranef"]["levels"] == sorted(complete["sch"].unique())
    assert by_number["ranef"]["levels"] == sorted(numbered["sch"].unique())
    assert by_text["ranef"]["modes"] == by_number["ranef"]["modes"]        # S0xx and xx sort alike here
    for key in ("fixed_effects", "random_effects", "reml_criterion"):
        assert by_text[key] == by_number[key], key
    assert [row["term"] for row in by_text["fixed_effects"]] == list(TRUTH)
    assert by_text["factors"] == {"sex": {"levels": ["boy", "girl"], "reference": "boy"},
                                  "factor(den)": {"levels": ["1", "2", "3", "4"], "reference": "1"}}


def test_quoted_column_names_fit_as_plain_ones(messy):
    complete = messy.dropna().reset_index(drop=True)
    renamed = complete.rename(columns={"iqv": "verbal iq", "sch": "school.id", "lpo": "lpo score"})
    quoted = fit_mixed(renamed, "`lpo score` ~ sex + `verbal iq` + ses + factor(den) + (1 + `verbal iq` | school.id)")
    plain = fit_mixed(complete, FORMULA)
    assert [row["estimate"] for row in quoted["fixed_effects"]] == [row["estimate"] for row in plain["fixed_effects"]]
    assert [row["term"] for row in quoted["fixed_effects"]][2] == "`verbal iq`"        # lme4's name for it
    assert quoted["random_effects"]["terms"] == ["(Intercept)", "`verbal iq`"]
    assert quoted["ranef"]["group"] == "school.id"


LME4_FIT = r"""
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
data <- read.csv(args[1])
fit <- lmer(lpo ~ sex + iqv + ses + factor(den) + (1 + iqv | sch), data = data)
vc <- as.data.frame(VarCorr(fit))
write_json(list(fixef = as.list(fixef(fit)), se = unname(sqrt(diag(as.matrix(vcov(fit))))),
                reml = unname(REMLcrit(fit)), sdcor = vc$sdcor, levels = rownames(ranef(fit)$sch),
                modes = unname(as.matrix(ranef(fit)$sch))), args[2], digits = NA, auto_unbox = TRUE)
"""


@pytest.fixture(scope="module")
def lme4_fit(messy, tmp_path_factory):
    """lme4's fit of the complete cases (text sex, factor(den), text school ids), or a skip without R."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not found (Debian: apt-get install r-base-core r-cran-lme4 r-cran-jsonlite)")
    folder = tmp_path_factory.mktemp("lme4")
    messy.dropna().to_csv(folder / "complete.csv", index=False)
    (folder / "fit.R").write_text(LME4_FIT)
    done = subprocess.run(["Rscript", str(folder / "fit.R"), str(folder / "complete.csv"), str(folder / "lme4.json")],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "there is no package" in done.stderr:
        pytest.skip(f"R packages missing: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    return json.loads((folder / "lme4.json").read_text())


def test_factor_predictor_and_text_group_ids_match_lme4(messy, lme4_fit):
    """The same tolerances as tests/parity: estimates and SEs 1e-4 relative, REML criterion 1e-3."""
    fit = fit_mixed(messy.dropna().reset_index(drop=True), FORMULA)
    assert [row["term"] for row in fit["fixed_effects"]] == list(lme4_fit["fixef"])
    np.testing.assert_allclose([row["estimate"] for row in fit["fixed_effects"]], list(lme4_fit["fixef"].values()),
                               rtol=1e-4)
    np.testing.assert_allclose([row["std_error"] for row in fit["fixed_effects"]], lme4_fit["se"], rtol=1e-4)
    assert fit["reml_criterion"] == pytest.approx(lme4_fit["reml"], abs=1e-3)
    re = fit["random_effects"]
    np.testing.assert_allclose([*re["sd"].values(), *re["cor"].values(), fit["sigma"]], lme4_fit["sdcor"], rtol=1e-3)
    assert fit["ranef"]["levels"] == lme4_fit["levels"]
    np.testing.assert_allclose(fit["ranef"]["modes"], lme4_fit["modes"], atol=1e-3)


@pytest.fixture(scope="module")
def brandsma(tmp_path_factory):
    """The acceptance case: the brandsma-like CSV ("NA" for missing) run with the default settings."""
    workdir = tmp_path_factory.mktemp("brandsma")
    data = brandsma_like(np.random.default_rng(7))
    source = workdir / "brandsma.csv"
    data.to_csv(source, index=False, na_rep="NA")
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    results = finished(workdir, {"data": {"source": "brandsma.csv"}, "model": {"formula": FORMULA}})
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before          # the user's file is only read
    return data, results


def test_brandsma_like_runs_with_default_settings(brandsma):
    data, results = brandsma
    assert data[list(MISSING)].isna().mean().between(0.08, 0.2).all()
    holes = data.isna()
    for k in range(1, 6):                                                         # m = 5, the default
        imputed = pd.read_parquet(results / "imputations" / f"imp_{k}.parquet")
        assert set(imputed.loc[holes["sex"], "sex"]) == {"boy", "girl"}, k
        assert not imputed.isna().any().any() and (imputed["sch"] == data["sch"]).all(), k
    ranef = pd.read_csv(results / "pooled" / "ranef.csv")
    assert set(ranef["level"]) == set(data["sch"])                                # "S017", as given
    assert "reference <b>boy</b>" in (results / "report.html").read_text()


def test_brandsma_like_pooled_estimates_near_the_truth(brandsma):
    pooled = pd.read_csv(brandsma[1] / "pooled" / "fixed_effects.csv").set_index("term")
    assert list(pooled.index) == list(TRUTH)
    # every pooled estimate within 3 pooled SEs of the value simulated (as for the default hsb run)
    z = (pooled["estimate"] - pd.Series(TRUTH)) / pooled["std_error"]
    assert (z.abs() < 3).all(), z.to_dict()


def test_an_integer_code_used_as_a_factor_must_be_imputed_as_a_category(messy, tmp_path, monkeypatch):
    from test_inputs import DEFAULT, message

    monkeypatch.chdir(tmp_path)
    messy.assign(den=messy["den"].mask(messy.index % 9 == 0)).to_csv("data.csv", index=False)
    config = {**DEFAULT, "data": {**DEFAULT["data"], "source": "data.csv"},
              "model": {**DEFAULT["model"], "formula": FORMULA}}
    assert check_inputs(config) == []                                      # auto: factor(den) makes den categorical
    config["imputation"] = {**config["imputation"], "exclude": ["sch"], "categorical": []}
    assert "makes ['den'] factors, but they would be imputed as numbers" in message(config)
