"""Generalized linear mixed models (mlmi.fit.glmm, mlmi.fit.families) against glmer's own numbers and closed forms.

The lme4 numbers are frozen in data/glmm_lme4.json by data/glmm_reference.R (lme4 1.1-31, glmer's
defaults: Laplace with its two optimisation stages, or nAGQ = 10), on cbpp (cbind, and the same as a
proportion with the trials as weights), a simulated binary outcome with a correlated random slope
(logit; probit with glmerControl(tolPwrss = 1e-12), see glmm.py), one whose groups do not differ (a singular
fit), grouseticks (Poisson; with one random term, and lme4's own nested example with an observation-level
effect), and a binary outcome of pupils in classes in schools (a random slope per school beside the classes).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from mlmi.fit import glmm
from mlmi.fit.families import Family, Response, binomial_response, response_problem
from mlmi.fit.formula import FormulaError, parse_formula
from mlmi.fit.record import FitRecord, per_term
from mlmi.pool.rubin import exponentiated, pool

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "glmm_lme4.json").read_text())
CASES = [case for case in REFERENCE if case != "versions"]


def _fit(case: str) -> dict:
    """mlmi's fit of one reference case, with the case's family, link, nAGQ, weights and PIRLS tolerance."""
    ref = REFERENCE[case]
    data = pd.read_csv(DATA / ref["data"])
    formula, weights = ref["formula"], ref["weights"] if isinstance(ref["weights"], str) else None
    if weights:  # R's `incidence / size` response, as a column of proportions
        data["proportion"] = data["incidence"] / data["size"]
        formula = formula.replace("incidence / size", "proportion")
    return glmm.fit_glmm(data, formula, ref["family"], ref["link"], ref["nAGQ"], weights=weights,
                         tol_pwrss=ref["tolPwrss"])


@pytest.fixture(scope="module")
def fits():
    return {case: _fit(case) for case in CASES}


def _column(fit: dict, key: str) -> np.ndarray:
    return np.array([row[key] for row in fit["fixed_effects"]])


@pytest.mark.parametrize("case", CASES)
def test_matches_glmer(fits, case):
    ref, fit = REFERENCE[case], fits[case]
    assert [row["term"] for row in fit["fixed_effects"]] == list(ref["fixef"])
    # Issue 16's tolerances: fixed effects 1e-4 relative, SEs 1e-3, variance components 1e-3, deviance 1e-4
    # absolute and not above lme4's (beyond 1e-7: lme4's criterion carries its PIRLS path, see glmm.py).
    np.testing.assert_allclose(_column(fit, "estimate"), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(_column(fit, "std_error"), list(ref["se"].values()), rtol=1e-3)
    np.testing.assert_allclose(fit["vcov"]["matrix"], ref["vcov"], rtol=2e-3, atol=1e-7)
    sdcor = [value for term in per_term(fit["random_effects"]) for value in [*term["sd"].values(),
                                                                             *term["cor"].values()]]
    np.testing.assert_allclose(sdcor, np.atleast_1d(ref["sdcor"]), rtol=1e-3,
                               atol=1e-5)  # atol: a singular fit's SD is 0 here, 1.2e-7 in lme4
    np.testing.assert_allclose(fit["theta"], np.atleast_1d(ref["theta"]), rtol=1e-3, atol=1e-5)
    assert fit["deviance"] == pytest.approx(ref["deviance"], abs=1e-4)
    assert fit["deviance"] <= ref["deviance"] + 1e-7
    for key in ("loglik", "aic", "bic"):
        assert fit[key] == pytest.approx(ref[key], abs=1e-4)
    # rel 1e-5: with an observation-level effect (grouseticks_nested) the residual deviance moves with all 403
    # modes, which follow theta, and lme4's Nelder_Mead stops short of the optimum (glmm.py): 1.1e-3 of 221 there.
    assert fit["resid_deviance"] == pytest.approx(ref["resid_deviance"], abs=1e-3, rel=1e-5)
    assert (fit["npar"], fit["n_obs"], fit["dfcom"]) == (ref["npar"], ref["nobs"], ref["df_residual"])
    assert fit["dfcom"] == ref["dfcom"]  # mice:::get.dfcom on glmer fits: df.residual = n - npar
    assert [term["group"] for term in per_term(fit["ranef"])] == list(ref["ranef"])  # lme4's term order
    for term in per_term(fit["ranef"]):
        modes, cond_var = np.array(term["modes"]), np.array(term["cond_var"])
        np.testing.assert_allclose(modes, np.array(ref["ranef"][term["group"]]["modes"]).reshape(modes.shape),
                                   atol=1e-3)
        np.testing.assert_allclose(cond_var, np.array(ref["ranef"][term["group"]]["cond_var"]).reshape(
            cond_var.shape), atol=1e-3)
    convergence = fit["convergence"]
    singular = ["boundary (singular) fit: see help('isSingular')"] if ref["singular"] else []
    assert convergence["converged"] and ref["messages"] == singular and convergence["singular"] == ref["singular"]
    assert [w for w in convergence["warnings"] if not w.startswith(singular[0] if singular else "-")] == []
    assert (fit["family"], fit["link"], fit["nagq"]) == (ref["family"], ref["link"], ref["nAGQ"])


@pytest.mark.parametrize("case", CASES)
def test_exponentiated_as_broom_mixed(fits, case):
    """Odds and rate ratios with Wald intervals: broom.mixed::tidy(exponentiate = TRUE, conf.int = TRUE)."""
    table, ref = FitRecord.from_fit(fits[case]).wald_table(), REFERENCE[case]["exponentiated"]
    np.testing.assert_allclose(np.exp(table["estimate"]), ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(np.exp(table[["conf_low", "conf_high"]]).T, [ref["conf_low"], ref["conf_high"]],
                               rtol=1e-3)


def test_cbind_and_weighted_proportion_are_one_model(fits):
    """cbind(successes, failures) and successes / trials with the trials as weights: the same likelihood."""
    a, b = fits["cbpp"], fits["cbpp_weights"]
    assert a["deviance"] == pytest.approx(b["deviance"], abs=1e-9)
    np.testing.assert_allclose(_column(a, "estimate"), _column(b, "estimate"), rtol=1e-9)


def test_agq_with_one_knot_is_laplace_on_deviance_residuals():
    """One Gauss-Hermite knot (z = 0, weight 1) leaves log|L|^2 + |u|^2 + sum of deviance residuals: the Laplace
    deviance with the deviance residuals in place of the family's aic (lme4's glmerAGQ and Laplace)."""
    data = pd.read_csv(DATA / "cbpp.csv")
    design = glmm.GlmmDesign(data, parse_formula(REFERENCE["cbpp"]["formula"]), Family("binomial", "logit"))
    mode = glmm.pirls(design, np.array([0.6]), np.zeros(len(data)), np.array([-1.4, -1.0, -1.1, -1.6]))
    family, response = design.family, design.response
    residual = np.sum(family.dev_resid(response.y, mode.mu, response.weights))
    assert glmm.agq(design, mode, 1) == pytest.approx(
        glmm.laplace(design, mode) - family.aic(response, mode.mu) + residual, rel=1e-12)


@pytest.mark.parametrize("family, link", [("binomial", "logit"), ("binomial", "probit"), ("poisson", "log")])
def test_pirls_without_random_effects_is_the_glm(family, link):
    """At theta = 0 the joint PIRLS mode is the GLM's maximum likelihood (statsmodels' IRLS, independent)."""
    data = pd.read_csv(DATA / ("grouseticks.csv" if family == "poisson" else "binary_slope.csv"))
    formula = "TICKS ~ cHEIGHT + (1 | BROOD)" if family == "poisson" else "y ~ x + z + (1 | g)"
    design = glmm.GlmmDesign(data, parse_formula(formula), Family(family, link))
    fam = design.family
    mode = glmm.pirls(design, np.array([0.0]), fam.linkfun(fam.mustart(design.response)), tol=1e-14)
    links = {"logit": sm.families.links.Logit(), "probit": sm.families.links.Probit(), "log": sm.families.links.Log()}
    sm_family = (sm.families.Binomial if family == "binomial" else sm.families.Poisson)(link=links[link])
    glm = sm.GLM(design.response.y, design.base.X, family=sm_family).fit(tol=1e-12)
    np.testing.assert_allclose(mode.beta, glm.params, rtol=1e-7)
    assert np.all(mode.u == 0)


def test_family_aic_and_deviance_residuals_closed_form():
    """The binomial aic is -2 sum log dbinom(successes, trials, mu) and the Poisson one -2 sum log dpois; deviance
    residuals are twice the log-likelihood ratio to the saturated model."""
    rng = np.random.default_rng(1)
    trials = rng.integers(1, 20, 50).astype(float)
    successes = rng.binomial(trials.astype(int), 0.3).astype(float)
    mu = rng.uniform(0.05, 0.95, 50)
    response = binomial_response(successes, trials - successes)
    logit = Family("binomial", "logit")
    assert logit.aic(response, mu) == pytest.approx(-2 * stats.binom.logpmf(successes, trials, mu).sum(), rel=1e-12)
    saturated = stats.binom.logpmf(successes, trials, successes / trials)
    np.testing.assert_allclose(logit.dev_resid(response.y, mu, response.weights),
                               2 * (saturated - stats.binom.logpmf(successes, trials, mu)), rtol=1e-9, atol=1e-12)
    counts, rate = rng.poisson(3, 50).astype(float), rng.uniform(0.5, 5, 50)
    poisson = Family("poisson", "log")
    assert poisson.aic(Response(counts, np.ones(50), np.ones(50)), rate) == pytest.approx(
        -2 * stats.poisson.logpmf(counts, rate).sum(), rel=1e-12)
    np.testing.assert_allclose(poisson.dev_resid(counts, rate, np.ones(50)),
                               2 * (stats.poisson.logpmf(counts, counts) - stats.poisson.logpmf(counts, rate)),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("family, values, weights, words", [
    ("binomial", [0, 1, 2], None, "must be 0/1"),
    ("binomial", [0, 0.5, 1], None, "must be 0/1"),
    ("binomial", [0, 0.5, 1.2], [2, 2, 2], "proportion in [0, 1]"),
    ("binomial", [0, 0.3, 1], [2, 2, 2], "whole number of successes"),
    ("poisson", [0, 1, -1], None, "whole non-negative counts"),
    ("poisson", [0, 1.5, 2], None, "whole non-negative counts"),
    ("binomial", [0, 1, 1], [1, -1, 1], "non-negative"),
])
def test_response_that_does_not_fit_the_family_is_named(family, values, weights, words):
    problem = response_problem(family, "passed", np.array(values, dtype=float), None,
                               None if weights is None else np.array(weights, dtype=float))
    assert words in problem and "\n" not in problem
    assert response_problem(family, "passed", np.array([0.0, 1.0, 1.0])) is None


def test_bad_response_stops_the_fit():
    data = pd.read_csv(DATA / "grouseticks.csv")
    with pytest.raises(ValueError, match="'TICKS' must be 0/1"):
        glmm.fit_glmm(data, "TICKS ~ cHEIGHT + (1 | BROOD)", "binomial")
    with pytest.raises(ValueError, match="model.link 'logit'"):
        glmm.fit_glmm(data, "TICKS ~ cHEIGHT + (1 | BROOD)", "poisson", "logit")


def test_agq_needs_one_scalar_random_effect():
    data = pd.read_csv(DATA / "binary_slope.csv")
    with pytest.raises(ValueError, match="single, scalar random-effects term"):
        glmm.fit_glmm(data, "y ~ x + (1 + x | g)", "binomial", n_agq=5)


def test_several_terms_on_one_factor_are_the_one_term_without_correlation():
    """'(1 + x || g)' is lme4's '(1 | g) + (0 + x | g)': two terms on one factor, fitted by the sparse path; it
    is the one-term model '(1 + x | g)' with the correlation held at zero. So the two paths give the same
    Laplace deviance at the same parameters (PIRLS converged tightly: its path no longer matters), and the fit
    of the restricted model has one parameter fewer and a deviance no lower."""
    data = pd.read_csv(DATA / "binary_slope.csv")
    family = Family("binomial", "logit")
    split = glmm.GlmmDesign(data, parse_formula("y ~ x + z + (1 + x || g)"), family)
    joint = glmm.GlmmDesign(data, parse_formula("y ~ x + z + (1 + x | g)"), family)
    assert not split.base.single and joint.base.single
    beta, eta0 = np.array([-0.3, 0.6, -0.4]), np.zeros(len(data))
    for sd_intercept, sd_slope in [(0.8, 0.5), (1.3, 0.05), (0.2, 0.9)]:
        on_split = glmm.Objective(split, 1, eta0, tol=1e-13).stage2(np.r_[sd_intercept, sd_slope, beta])
        on_joint = glmm.Objective(joint, 1, eta0, tol=1e-13).stage2(np.r_[sd_intercept, 0.0, sd_slope, beta])
        assert on_split == pytest.approx(on_joint, abs=1e-8)
    fit_split = glmm.fit_glmm(data, "y ~ x + z + (1 + x || g)", "binomial")
    fit_joint = glmm.fit_glmm(data, "y ~ x + z + (1 + x | g)", "binomial")
    assert [term["terms"] for term in fit_split["random_effects"]] == [["(Intercept)"], ["x"]]
    assert fit_split["npar"] == fit_joint["npar"] - 1
    assert fit_split["deviance"] >= fit_joint["deviance"] - 1e-6


def test_cbind_is_parsed_never_evaluated():
    formula = parse_formula("cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)")
    assert formula.response == "incidence" and formula.failures == ((1, "size"), (-1, "incidence"))
    assert parse_formula("cbind(yes, `no way`) ~ x + (1 | g)").failures == ((1, "no way"),)
    for bad in ("cbind(a, log(b)) ~ x + (1 | g)", "cbind(a, b * 2) ~ x + (1 | g)",
                "cbind(a, __import__) ~ x + (1 | g)", "cbind(a, b, c) ~ x + (1 | g)"):
        with pytest.raises(FormulaError):
            parse_formula(bad)


MICE_CASES = ["glmm_mice", "glmm_mice_nested"]  # from glmm_mice_reference.R: one random term, and two (nested)


@pytest.fixture(scope="module", params=MICE_CASES)
def mice_case(request):
    """A mice reference and mlmi's glmer fits of its imputations."""
    ref = json.loads((DATA / f"{request.param}.json").read_text())
    return ref, [glmm.fit_glmm(pd.read_csv(DATA / f"{request.param}_imp_{k}.csv"), ref["formula"], "binomial")
                 for k in range(1, ref["m"] + 1)]


def test_pooled_as_mice_pools_glmer_fits(mice_case):
    """mice::pool(with(imp, glmer(...))) on mice's own imputations: the same pooled table, with mice's dfcom for a
    glmerMod (n - npar) and summary(pool, conf.int = TRUE, exponentiate = TRUE)'s ratios."""
    MICE, mice_fits = mice_case
    for fit, ref in zip(mice_fits, MICE["per_fit"]):
        np.testing.assert_allclose(_column(fit, "estimate"), ref["fixef"], rtol=1e-4)
        np.testing.assert_allclose(_column(fit, "std_error"), ref["se"], rtol=1e-3)
        assert fit["deviance"] == pytest.approx(ref["deviance"], abs=1e-4) and not ref["messages"]
    pooled, ref = pool([FitRecord.from_fit(fit) for fit in mice_fits]), MICE["pooled"]
    assert list(pooled["term"]) == ref["term"] and (pooled["dfcom"] == ref["dfcom"]).all()
    # Seen: estimate, ubar and t within 3e-5 relative; b, riv, lambda, fmi and df (which amplify the fits'
    # differences) within 2.5e-4 (one term, glmer's default Nelder_Mead); everything within 5.2e-6 (nested, lme4's
    # bobyqa run to the optimum).
    for column, rtol in [("estimate", 1e-4), ("ubar", 1e-4), ("t", 1e-4), ("b", 1e-3), ("riv", 1e-3),
                         ("lambda", 1e-3), ("fmi", 1e-3), ("df", 1e-3)]:
        np.testing.assert_allclose(pooled[column], ref[column], rtol=rtol, err_msg=column)
    np.testing.assert_allclose(pooled[["std_error", "statistic", "conf_low", "conf_high"]].T,
                               [MICE["std_error"], MICE["statistic"], MICE["conf_low"], MICE["conf_high"]], rtol=1e-3)
    ratios = exponentiated(pooled)
    np.testing.assert_allclose(ratios[["ratio", "conf_low", "conf_high"]].T,
                               [MICE["ratio"], MICE["ratio_low"], MICE["ratio_high"]], rtol=1e-3)
