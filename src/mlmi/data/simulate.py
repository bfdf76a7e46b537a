"""An hsb-like data set (students in schools) with known true parameters (design §6).

The defaults imitate High School and Beyond as the merTools vignette uses it, and
``mathach`` follows the vignette's model ``mathach ~ minority + female + ses + meanses +
(1 + ses | schid)`` with lme4's REML estimates on the real hsb as the true values, so every
report can say how far each estimate lies from the truth.

With ``n_classes`` set (k >= 2), the data are three-level: the students of each school sit in k
classes (``classid``, unique across schools), and ``mathach`` gets a class random intercept of SD
``sd_class`` besides the school's, the model ``mathach ~ ... + (1 + ses | schid) + (1 | classid)``, as
lme4 also writes it ``(1 + ses | schid) + (1 | schid:classid)``. Its draws come after every draw of the
two-level data, so without ``n_classes`` the data are those of the two-level generator, byte for byte.

With ``outcome: binary`` the same students get a 0/1 ``passed`` in place of ``mathach``, from the
logistic mixed model of the same predictors and random part, with known truth on the logit scale
(the ``binary`` settings). Its defaults translate the vignette's model to "mathach above its mean
12.75": a logistic latent residual with the Gaussian one's SD 5.98 has scale 5.98 sqrt(3) / pi =
3.30, so each coefficient and SD is the Gaussian one over 3.30, the intercept (14.05 - 12.75) / 3.30
(rounded; the correlation is unchanged); about half the students pass.
"""
import copy

import numpy as np
import pandas as pd
from scipy import special  # scipy.stats' norm and rankdata are written out below, without its ~0.5 s import

TERMS = ["(Intercept)", "minority", "female", "ses", "meanses"]
COLUMNS = ["schid", "minority", "female", "ses", "mathach", "size", "schtype", "meanses"]

#: Default generator settings: the margins of the real hsb and the vignette's lme4 fit.
DEFAULTS = {
    "n_schools": 160,
    "students_min": 14,
    "students_max": 67,
    "students_mean": 44.9,
    "students_sd": 11.85,
    "catholic_fraction": 0.4375,
    "size_min": 100,
    "size_max": 2713,
    "size_mean": 1098,
    "size_sd": 629.5,
    "ses_between_sd": 0.41,
    "ses_within_sd": 0.66,
    "minority_rate": 0.275,
    "minority_ses_cor": -0.27,
    "minority_icc": 0.5,
    "female_rate": 0.528,
    "girls_school_fraction": 0.10,
    "boys_school_fraction": 0.075,
    "fixed_effects": {"(Intercept)": 14.05, "minority": -2.80, "female": -1.21, "ses": 1.92,
                      "meanses": 3.05},
    "sd_intercept": 1.54,
    "sd_ses": 0.58,
    "cor_intercept_ses": -0.63,
    "sigma": 5.98,
    "n_classes": 0,
    "sd_class": 1.0,
    "outcome": "gaussian",
    "binary": {
        "fixed_effects": {"(Intercept)": 0.39, "minority": -0.85, "female": -0.37, "ses": 0.58, "meanses": 0.93},
        "sd_intercept": 0.47,
        "sd_ses": 0.18,
        "cor_intercept_ses": -0.63,
    },
}
#: The class id column of three-level data (``n_classes``), placed after ``schid``.
CLASS = "classid"
#: The class factor's name in the truth: as lme4 names the class term of ``(1 | schid/classid)``.
CLASS_GROUP = "classid:schid"
#: The response column of each ``outcome``: mathach (Gaussian), or passed (0/1, logistic).
RESPONSES = {"gaussian": "mathach", "binary": "passed"}


def _merge(defaults: dict, given: dict, where: str = "settings") -> dict:
    """``given`` merged recursively over ``defaults``; a key ``defaults`` lacks is an error."""
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ValueError(f"unknown key {key!r} in {where}; known keys: {sorted(defaults)}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{where}.{key}")
        else:
            merged[key] = value
    return merged


def _scaled_beta(rng, n, low, high, mean, sd, name):
    """n draws of ``low + (high - low) * Beta(a, b)`` with a and b matching mean and SD.

    A scaled Beta keeps every draw inside [low, high] while hitting the target mean and SD
    (method of moments), as school sizes and enrolments must.
    """
    p = (mean - low) / (high - low)
    v = (sd / (high - low)) ** 2
    if not 0 < p < 1 or not 0 < v < p * (1 - p):
        raise ValueError(f"{name}: mean {mean} and SD {sd} are impossible within [{low}, {high}]")
    concentration = p * (1 - p) / v - 1
    return low + (high - low) * rng.beta(p * concentration, (1 - p) * concentration, n)


def _school_flags(rng, n_schools, fractions):
    """A school label 0..len(fractions): exactly round(f * n_schools) schools get each label
    i + 1, at random places; the rest get 0."""
    counts = [round(f * n_schools) for f in fractions]
    if sum(counts) > n_schools:
        raise ValueError(f"school fractions {fractions} add up to more than all schools")
    labels = np.repeat(np.arange(len(counts) + 1), [n_schools - sum(counts), *counts])
    return rng.permutation(labels)


def _latent_minority_cor(rate, point_biserial):
    """Correlation of the latent normal with ses that gives the target point-biserial one.

    With minority = 1{z > tau}, tau = Phi^-1(1 - rate), and (z, ses) bivariate normal with
    correlation rho, the point-biserial correlation is rho phi(tau) / sqrt(rate (1 - rate)).
    """
    tau = special.ndtri(1 - rate)  # scipy.stats.norm.ppf
    rho = point_biserial * np.sqrt(rate * (1 - rate)) / _normal_density(tau)
    if abs(rho) >= 1:
        raise ValueError(f"minority_ses_cor {point_biserial} is impossible with minority_rate {rate}")
    return rho


def _normal_density(x) -> np.float64:
    """The standard normal density at ``x`` as ``scipy.stats.norm.pdf`` computes it, bit for bit: on an array (numpy's
    exp of a scalar can differ from its exp of an array in the last bit)."""
    return (np.exp(-np.asarray(x, dtype=float) ** 2 / 2.0) / np.sqrt(2 * np.pi))[()]


def _minority(rng, school, ses_std, ses_icc, s):
    """0/1 minority: the round(minority_rate * n) students of highest latent z are minority.

    z = rho ses_std + sqrt(1 - rho^2) eps is marginally N(0, 1); eps has a school part chosen
    so that z has intraclass correlation ``minority_icc`` (given that ses_std, the
    standardised ses, has ``ses_icc``). Thresholding at the sample quantile rather than at
    Phi^-1(1 - rate) keeps the rate exact: with school clustering the realised rate would
    otherwise wander by about +-0.02 (one SD) around the target.
    """
    rho = _latent_minority_cor(s["minority_rate"], s["minority_ses_cor"])
    eps_icc = (s["minority_icc"] - rho**2 * ses_icc) / (1 - rho**2)
    if not 0 <= eps_icc <= 1:
        raise ValueError(f"minority_icc {s['minority_icc']} is impossible with minority_ses_cor "
                         f"{s['minority_ses_cor']} and the ses intraclass correlation {ses_icc:.3f}")
    n_schools = school.max() + 1
    eps = (np.sqrt(eps_icc) * rng.standard_normal(n_schools)[school]
           + np.sqrt(1 - eps_icc) * rng.standard_normal(len(school)))
    z = rho * ses_std + np.sqrt(1 - rho**2) * eps
    n_minority = round(s["minority_rate"] * len(z))
    return (_ordinal_ranks(z) > len(z) - n_minority).astype(np.int64)


def _ordinal_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties in order of appearance (``scipy.stats.rankdata(values, method="ordinal")``)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


def _female(rng, school, students, s):
    """0/1 female: girls' schools all 1, boys' schools all 0, mixed schools at the rate that
    makes the expected overall rate ``female_rate`` given the simulated school sizes."""
    kind = _school_flags(rng, len(students), [s["girls_school_fraction"], s["boys_school_fraction"]])
    n_girls_schools, n_mixed = students[kind == 1].sum(), students[kind == 0].sum()
    # max(..., 1): with no mixed school only the rate the single-sex schools give passes the check
    mixed_rate = (s["female_rate"] * students.sum() - n_girls_schools) / max(n_mixed, 1)
    if not 0 <= mixed_rate <= 1:
        raise ValueError(f"female_rate {s['female_rate']} is impossible with these single-sex schools")
    rate = np.select([kind == 1, kind == 2], [1.0, 0.0], mixed_rate)[school]
    return (rng.random(len(school)) < rate).astype(np.int64)


def _random_effects(rng, n_schools, s):
    """Per-school intercept and ses-slope deviations, bivariate normal with the true SDs and
    correlation r: b0 = sd0 z0 and b1 = sd1 (r z0 + sqrt(1 - r^2) z1), valid for |r| = 1 too."""
    z = rng.standard_normal((2, n_schools))
    r = s["cor_intercept_ses"]
    return s["sd_intercept"] * z[0], s["sd_ses"] * (r * z[0] + np.sqrt(1 - r**2) * z[1])


def _truth(s):
    """The true parameters in the shape of data/truth.json (design §4). Three-level data have a list of
    random terms, as a fit record of several terms has: the class intercept (``classid:schid``), then the
    school's."""
    school = {"group": "schid", "sd": {"(Intercept)": float(s["sd_intercept"]), "ses": float(s["sd_ses"])},
              "cor": {"(Intercept).ses": float(s["cor_intercept_ses"])}}
    classes = {"group": CLASS_GROUP, "sd": {"(Intercept)": float(s["sd_class"])}, "cor": {}}
    return {"fixed_effects": {term: float(s["fixed_effects"][term]) for term in TERMS},
            "random_effects": [classes, school] if s["n_classes"] else school,
            "sigma": float(s["sigma"])}


def _classes(rng, school, s):
    """Three-level data: each student's class (students of a school split into ``n_classes`` classes of
    nearly equal size, in their order: at random, as students are drawn independently) with ids unique across
    schools, and each class's random intercept, N(0, sd_class)."""
    k = s["n_classes"]
    if k == 1 or k > s["students_min"]:
        raise ValueError(f"n_classes {k}: give 0 (two levels) or from 2 classes a school up to students_min "
                         f"({s['students_min']})")
    size = np.bincount(school)
    rank = np.arange(len(school)) - np.repeat(np.cumsum(size) - size, size)
    classid = school * k + rank * k // size[school]
    return classid + 1, s["sd_class"] * rng.standard_normal(len(size) * k)[classid]


def simulate_hsb(settings: dict, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """Simulate an hsb-like data set and return it with its true parameters.

    Parameters
    ----------
    settings : dict
        Generator settings merged over ``DEFAULTS`` (a partial dict is fine, nested
        ``fixed_effects`` too); an unknown key is a ValueError.
    rng : numpy.random.Generator
        The only source of randomness: the same seed gives the same data.

    Returns
    -------
    data : pandas.DataFrame
        One row per student, sorted by school: ``schid, minority, female, ses, mathach,
        size, schtype, meanses`` (int64 except the float64 ``ses``, ``mathach``, ``meanses``);
        with ``outcome: binary`` the int64 0/1 ``passed`` in place of ``mathach``, and ``classid``
        after ``schid`` when ``n_classes`` is set.
    truth : dict
        ``{"fixed_effects": {term: value}, "random_effects": {"group": "schid", "sd": {...},
        "cor": {"(Intercept).ses": value}}, "sigma": value}``; for the binary outcome the
        ``binary`` settings (logit scale), ``sigma`` None, and ``"family": "binomial", "link": "logit"``;
        for three-level data ``random_effects`` is a list: ``{"group": "classid:schid", "sd":
        {"(Intercept)": sd_class}, "cor": {}}``, then the school's.

    Notes
    -----
    Students per school and enrolment are scaled Betas matching min, max, mean and SD;
    exactly round(catholic_fraction * n_schools) schools are Catholic. ses is a school mean
    N(0, ses_between_sd) plus a student deviation N(0, ses_within_sd); meanses is the
    realised school mean of ses. minority thresholds a latent normal correlated with ses and
    clustered by school. mathach = X beta + b0_j + b1_j ses + e with (b0_j, b1_j) bivariate
    normal and e ~ N(0, sigma); three-level data add c_k, the class's N(0, sd_class) intercept.
    The binary outcome draws (b0_j, b1_j) the same way from the ``binary`` SDs and correlation
    (the same random numbers as mathach's), and passed = 1 with probability logistic(X beta +
    b0_j + b1_j ses), beta the ``binary`` fixed effects.
    """
    s = _merge(DEFAULTS, settings)
    n_schools = s["n_schools"]
    students = np.rint(_scaled_beta(rng, n_schools, s["students_min"], s["students_max"],
                                    s["students_mean"], s["students_sd"], "students")).astype(np.int64)
    size = np.rint(_scaled_beta(rng, n_schools, s["size_min"], s["size_max"], s["size_mean"],
                                s["size_sd"], "size")).astype(np.int64)
    schtype = _school_flags(rng, n_schools, [s["catholic_fraction"]]).astype(np.int64)
    school = np.repeat(np.arange(n_schools), students)

    ses = (s["ses_between_sd"] * rng.standard_normal(n_schools)[school]
           + s["ses_within_sd"] * rng.standard_normal(len(school)))
    ses_var = s["ses_between_sd"] ** 2 + s["ses_within_sd"] ** 2
    minority = _minority(rng, school, ses / np.sqrt(ses_var), s["ses_between_sd"] ** 2 / ses_var, s)
    female = _female(rng, school, students, s)
    meanses = pd.Series(ses).groupby(school).transform("mean").to_numpy()

    data = pd.DataFrame({"schid": school + 1, "minority": minority, "female": female, "ses": ses,
                         "size": size[school], "schtype": schtype[school], "meanses": meanses})
    if s["outcome"] == "binary":
        if s["n_classes"]:
            raise ValueError("outcome binary with n_classes: the binary outcome is simulated with two levels; "
                             "set n_classes: 0, or outcome: gaussian for three-level data")
        data["passed"] = _binary_outcome(rng, s["binary"], n_schools, school, data)
        return data[simulated_columns(s)], binary_truth(s)
    data["mathach"] = _gaussian_outcome(rng, s, n_schools, school, data)
    if s["n_classes"]:
        data[CLASS], class_effect = _classes(rng, school, s)
        data["mathach"] += class_effect
    return data[simulated_columns(s)], _truth(s)


def simulated_columns(settings: dict) -> list[str]:
    """The generator's columns for ``settings`` (merged over DEFAULTS): COLUMNS, with ``passed`` in place of
    ``mathach`` when ``outcome`` is binary, and ``classid`` after ``schid`` when the data are three-level."""
    s = _merge(DEFAULTS, settings)
    columns = [RESPONSES[s["outcome"]] if column == "mathach" else column for column in COLUMNS]
    return [columns[0], CLASS, *columns[1:]] if s["n_classes"] else columns


def _linear_predictor(rng, truth: dict, n_schools: int, school, data: pd.DataFrame) -> np.ndarray:
    """X beta + b0_j + b1_j ses for the vignette's predictors, with beta ``truth["fixed_effects"]`` and
    (b0_j, b1_j) drawn by ``_random_effects`` with the SDs and correlation of ``truth``."""
    beta = truth["fixed_effects"]
    minority, female, ses, meanses = (data[c].to_numpy() for c in ("minority", "female", "ses", "meanses"))
    b0, b1 = _random_effects(rng, n_schools, truth)
    return (beta["(Intercept)"] + beta["minority"] * minority + beta["female"] * female
            + beta["ses"] * ses + beta["meanses"] * meanses + b0[school] + b1[school] * ses)


def _gaussian_outcome(rng, s: dict, n_schools: int, school, data: pd.DataFrame) -> np.ndarray:
    """mathach = X beta + b0_j + b1_j ses + e, e ~ N(0, sigma): the vignette's linear mixed model."""
    eta = _linear_predictor(rng, s, n_schools, school, data)
    return eta + s["sigma"] * rng.standard_normal(len(school))


def _binary_outcome(rng, truth: dict, n_schools: int, school, data: pd.DataFrame) -> np.ndarray:
    """0/1 ``passed``, 1 with probability logistic(X beta + b0_j + b1_j ses), every parameter from ``truth``
    (the ``binary`` settings): the logistic mixed model ``glmer(passed ~ minority + female + ses + meanses
    + (1 + ses | schid), family = binomial)`` with these as its true values."""
    eta = _linear_predictor(rng, truth, n_schools, school, data)
    return (rng.random(len(school)) < special.expit(eta)).astype(np.int64)


def binary_truth(s: dict) -> dict:
    """The true parameters of the binary outcome on the model's (logit) scale, in the shape of data/truth.json
    (design §4): ``sigma`` is null (a logistic model has no residual SD), ``family`` and ``link`` name the scale."""
    truth = _truth({**s, **s["binary"]})
    return {**truth, "sigma": None, "family": "binomial", "link": "logit"}
