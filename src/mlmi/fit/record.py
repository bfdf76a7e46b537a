"""The fit record (``fits/*.json``): one fitted model, typed and versioned, read without fitting anything.

``mlmi.fit.lmer.fit_mixed`` and ``mlmi.fit.glmm.fit_glmm`` make a record as a JSON-ready mapping; the fit stage
stamps it with ``RECORD_VERSION`` (``FitRecord.from_fit``, the one place a version is given) and writes it. The pool stage,
the report, the console and a study read it back with ``FitRecord.from_json``, which refuses a record of another
version in one line, and read it through the accessors below (lme4's ``fixef``, ``vcov``, ``VarCorr``,
``ranef``), never by string keys, so none of them imports ``mlmi.fit.lmer`` (and with it statsmodels). On disk the
record is the producers' mapping plus ``record_version``; a new field of a fit is read through an accessor here.
"""
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlmi.run.io import read_json

#: The version of the record's shape that this mlmi writes and reads; raised when a field a reader needs
#: changes meaning or place (a record of another version is refused, never half read).
RECORD_VERSION = 1
#: lme4's default tolerance on max |gradient| of the deviance (``check.conv.grad``).
GRAD_TOL = 2e-3
#: The columns of a record's fixed effects, one row per term (broom's names).
FIXED_COLUMNS = ["term", "estimate", "std_error", "statistic"]


class RecordVersionError(ValueError):
    """A fit record of another version than ``RECORD_VERSION`` (or of none: made before records had one)."""


def per_term(part) -> list[dict]:
    """A record's (or a truth.json's) ``random_effects`` or ``ranef`` as a list with one mapping per random term: a
    model of one term holds the mapping itself (the record shape of one grouping factor), a model of several a
    list."""
    return part if isinstance(part, list) else [part]


def parameter_rows(terms: list[dict], sigma: float | None) -> list[dict]:
    """SDs, correlations and the residual SD named as broom.mixed names them (``group, term, estimate``): per random
    term (lme4's order) its SDs, then its correlations; ``sigma`` last as ``sd__Observation`` of ``Residual``, unless
    None (a binomial or Poisson model has none, as lme4's VarCorr shows)."""
    rows = []
    for re in terms:
        rows += [{"group": re["group"], "term": f"sd__{name}", "estimate": value} for name, value in re["sd"].items()]
        rows += [{"group": re["group"], "term": f"cor__{pair}", "estimate": value} for pair, value in re["cor"].items()]
    return rows + ([] if sigma is None else [{"group": "Residual", "term": "sd__Observation", "estimate": sigma}])


def failure(convergence: dict) -> str:
    """Why a fit did not converge (its record's ``convergence``), in one line: its attempts, the kept optimizer's own
    message and max|grad|."""
    kept = convergence["attempts"][convergence["kept"] - 1]
    return (f"no attempt of {len(convergence['attempts'])} converged; the best, {convergence['optimizer']}, "
            f"ended with {kept['message']!r} at max|grad| = {convergence['max_abs_gradient']:.3g} "
            f"(tol = {GRAD_TOL})")


def scale_of(name: str) -> str:
    """The scale a variance parameter (broom.mixed's name) is Wald-approximated and pooled on: ``atanh`` for a
    correlation, ``log`` for an SD."""
    return "atanh" if name.startswith("cor__") else "log"


@dataclass(frozen=True)
class RandomTerm:
    """One random term's variance components (``VarCorr``): its grouping factor, its effects (``terms``:
    ``(Intercept)``, ``ses``), their SDs by effect, correlations by ``first.second`` and covariance matrix."""

    group: str
    terms: list[str]
    sd: dict[str, float]
    cor: dict[str, float]
    cov: np.ndarray


@dataclass(frozen=True)
class ConditionalModes:
    """One random term's conditional modes (``ranef(condVar = TRUE)``): its grouping factor, the factor's levels,
    its effects, the modes (levels x effects) and their conditional covariances (levels x effects x effects)."""

    group: str
    levels: list
    terms: list[str]
    modes: np.ndarray
    cond_var: np.ndarray


@dataclass(frozen=True)
class VarianceParameters:
    """A fit's variance parameters on their pooling scales (``mlmi.fit.vc_wald``): per parameter its grouping factor
    (``Residual`` for sigma), broom.mixed name, scale (``log`` or ``atanh``) and estimate there; their Wald
    covariance, None where it is not defined (a singular fit, ``problem`` says why; a GLMM's point estimates)."""

    groups: list[str]
    terms: list[str]
    scales: list[str]
    estimate: list[float]
    vcov: np.ndarray | None
    problem: str | None = None


@dataclass(frozen=True)
class FitRecord:
    """One fit record: the mapping as on disk (``raw``, read only through the accessors) and where it came from
    (``source``, for messages)."""

    raw: dict
    source: str = "this mapping"

    @classmethod
    def from_json(cls, record) -> "FitRecord":
        """A record from its file (a path) or its mapping as read from one; a RecordVersionError in one line, naming
        the file and what to do, for a record of another version or of none."""
        source = str(record) if isinstance(record, (str, Path)) else cls.source
        raw = read_json(record) if isinstance(record, (str, Path)) else record
        version = raw.get("record_version", 0)
        if version != RECORD_VERSION:
            raise RecordVersionError(f"{source} is a fit record of version {version!r}; this mlmi reads version "
                                     f"{RECORD_VERSION}: {_remedy(record)}")
        return cls(raw, source)

    @classmethod
    def from_fit(cls, made: dict) -> "FitRecord":
        """The record of a fit just made in this process (``fit_mixed``'s or ``fit_glmm``'s mapping), stamped with
        ``RECORD_VERSION``: the one place a record gets its version."""
        return cls({"record_version": RECORD_VERSION, **made})

    def to_json(self) -> dict:
        """The record as written to ``fits/*.json`` (a copy: the record stays as read)."""
        return copy.deepcopy(self.raw)

    # ---- the model ---------------------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The fit's label (``imputation 3``, ``listwise``), as the fit stage named it."""
        return self.raw.get("label", "")

    @property
    def formula(self) -> str:
        """The model formula as the user wrote it (lme4 syntax)."""
        return self.raw["formula"]

    @property
    def family(self) -> str:
        """``gaussian`` for a linear mixed model, else the GLMM's family (``binomial``, ``poisson``)."""
        return self.raw.get("family", "gaussian")

    @property
    def link(self) -> str | None:
        """A GLMM's link (``logit``, ``probit``, ``log``); None for a linear mixed model."""
        return self.raw.get("link")

    @property
    def is_linear(self) -> bool:
        """Whether the model is a linear mixed model (it then has a residual SD, R² and REML)."""
        return self.family == "gaussian"

    @property
    def reml(self) -> bool:
        """Whether the fit is by REML (a GLMM's never is)."""
        return bool(self.raw["reml"])

    @property
    def ratio_kind(self) -> str | None:
        """What exp of a fixed effect is for the family and link: odds ratios (binomial, logit), rate ratios
        (Poisson, log), or None (a linear model's, or a probit's, coefficients are not ratios on the exp scale)."""
        return {("binomial", "logit"): "odds ratio", ("poisson", "log"): "rate ratio"}.get((self.family, self.link))

    @property
    def link_scale(self) -> str | None:
        """The scale a GLMM's coefficients are on, for axis labels: log odds, probit or log rate; None for a linear
        mixed model (its response's own units)."""
        return None if self.is_linear else {"logit": "log odds", "probit": "probit", "log": "log rate"}.get(self.link)

    @property
    def model_kind(self) -> str:
        """The model in a phrase: ``linear mixed model``, or ``generalized linear mixed model (binomial family,
        logit link)``."""
        if self.is_linear:
            return "linear mixed model"
        return f"generalized linear mixed model ({self.family} family, {self.link} link)"

    @property
    def estimation(self) -> str:
        """How the fit estimates: REML, maximum likelihood, or for a GLMM maximum likelihood with glmer's
        approximation of the integral (Laplace, or adaptive Gauss-Hermite quadrature with its nAGQ)."""
        if self.is_linear:
            return "REML" if self.reml else "maximum likelihood"
        nagq = self.raw["nagq"]
        return ("maximum likelihood (Laplace approximation)" if nagq == 1 else
                f"maximum likelihood (adaptive Gauss-Hermite quadrature, nAGQ = {nagq})")

    # ---- data and grouping factors ----------------------------------------------------------------------------

    @property
    def n_obs(self) -> int:
        """Rows the model was fitted to."""
        return self.raw["n_obs"]

    @property
    def n_groups(self) -> dict[str, int]:
        """Levels of each grouping factor, by lme4's name of the factor (``schid``, ``classid:schid``)."""
        return self.raw["n_groups"]

    @property
    def n_levels(self) -> int:
        """How many grouping factors the model has."""
        return self.raw["n_levels"]

    @property
    def factors(self) -> dict:
        """The formula's categorical terms and their dummy columns (``mlmi.fit.formula``'s factors), for hypotheses that
        name a factor."""
        return self.raw["factors"]

    @property
    def dropped(self) -> list[str]:
        """Fixed-effect columns dropped as aliased (lme4's rank deficiency)."""
        return self.raw["dropped"]

    # ---- fixed effects ------------------------------------------------------------------------------------------

    @property
    def fixed_effects(self) -> pd.DataFrame:
        """lme4's fixed effects, one row per term: ``term, estimate, std_error, statistic``."""
        return pd.DataFrame(self.raw["fixed_effects"], columns=FIXED_COLUMNS)

    @property
    def terms(self) -> list[str]:
        """The fixed-effect terms in the model's order."""
        return [row["term"] for row in self.raw["fixed_effects"]]

    @property
    def estimates(self) -> dict[str, float]:
        """The fixed-effect estimates by term, in the model's order (``fixef``)."""
        return {row["term"]: row["estimate"] for row in self.raw["fixed_effects"]}

    @property
    def vcov(self) -> np.ndarray:
        """The fixed effects' covariance matrix (``vcov``), rows and columns in the order of ``terms``."""
        p = len(self.terms)
        return np.asarray(self.raw["vcov"]["matrix"], dtype=float).reshape(p, p)

    def wald_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """The fixed effects in broom's columns with Wald (normal) intervals, as lme4's confint."""
        from scipy import special  # here: a fit job writes records without p-values, and scipy.special costs ~0.2 s

        table = self.fixed_effects
        half = special.ndtri(0.5 + conf_level / 2) * table["std_error"]
        return table.assign(p_value=2 * special.ndtr(-np.abs(table["statistic"])),
                            conf_low=table["estimate"] - half, conf_high=table["estimate"] + half)

    # ---- random effects -----------------------------------------------------------------------------------------

    @property
    def variance_components(self) -> list[RandomTerm]:
        """The variance components of every random term, in lme4's order, whatever the number of terms."""
        return [RandomTerm(part["group"], part["terms"], part["sd"], part["cor"], np.asarray(part["cov"], dtype=float))
                for part in per_term(self.raw["random_effects"])]

    @property
    def sigma(self) -> float:
        """lme4's ``sigma()``: the residual SD of a linear mixed model, 1 for a binomial or Poisson GLMM."""
        return self.raw["sigma"]

    @property
    def random_parameters(self) -> list[dict]:
        """The SDs, correlations and (a linear mixed model's) residual SD as broom.mixed names them
        (``parameter_rows``)."""
        return parameter_rows(per_term(self.raw["random_effects"]), self.sigma if self.is_linear else None)

    @property
    def ranef(self) -> list[ConditionalModes]:
        """The conditional modes of every random term, in lme4's order, whatever the number of terms."""
        return [ConditionalModes(part["group"], part["levels"], part["terms"], np.asarray(part["modes"], dtype=float),
                                 np.asarray(part["cond_var"], dtype=float))
                for part in per_term(self.raw["ranef"])]

    @property
    def variance_parameters(self) -> VarianceParameters | None:
        """The variance parameters on their pooling scales with their Wald covariance (``mlmi.fit.vc_wald``); None in a
        GLMM's record."""
        found = self.raw.get("variance_parameters")
        if found is None:
            return None
        vcov = None if found["vcov"] is None else np.asarray(found["vcov"], dtype=float)
        return VarianceParameters(found["groups"], found["terms"], found["scales"], found["estimate"], vcov,
                                  found["problem"])

    @property
    def r2(self) -> dict | None:
        """The multilevel R² (``mlmi.fit.r2.fit_r2``); None in a GLMM's record, or in a record made outside the fit
        stage."""
        return self.raw.get("r2")

    # ---- convergence and criteria --------------------------------------------------------------------------------

    @property
    def converged(self) -> bool:
        """Whether the fit converged by lme4's check (the kept attempt's max |gradient| below ``GRAD_TOL``)."""
        return bool(self.raw["convergence"]["converged"])

    @property
    def singular(self) -> bool:
        """Whether the fit is singular: a variance at zero or a correlation at ±1 (lme4's ``isSingular``)."""
        return bool(self.raw["convergence"]["singular"])

    @property
    def warnings(self) -> list[str]:
        """The warnings true of the kept fit, in lme4's words."""
        return self.raw["convergence"]["warnings"]

    @property
    def max_abs_gradient(self) -> float:
        """max |gradient| of the deviance at the kept optimum (lme4's ``check.conv.grad`` measure)."""
        return self.raw["convergence"]["max_abs_gradient"]

    @property
    def failure(self) -> str | None:
        """Why the fit did not converge, in one line (``failure``); None when it converged."""
        return None if self.converged else failure(self.raw["convergence"])

    @property
    def deviance(self) -> float | None:
        """The deviance at the optimum (ML fits and GLMMs); None for a REML fit."""
        return self.raw["deviance"]

    @property
    def reml_criterion(self) -> float | None:
        """The REML criterion at the optimum; None for an ML fit."""
        return self.raw["reml_criterion"]

    @property
    def loglik(self) -> float:
        """The log-likelihood (REML's for a REML fit, as lme4's ``logLik``)."""
        return self.raw["loglik"]

    @property
    def aic(self) -> float:
        """AIC = -2 logLik + 2 npar."""
        return self.raw["aic"]

    @property
    def bic(self) -> float:
        """BIC = -2 logLik + log(n_obs) npar."""
        return self.raw["bic"]

    @property
    def npar(self) -> int:
        """The number of parameters: fixed effects, theta and (a linear mixed model's) sigma."""
        return self.raw["npar"]

    @property
    def dfcom(self) -> int:
        """n_obs - npar: what mice takes as an lmer fit's complete-data degrees of freedom."""
        return self.raw["dfcom"]


def _remedy(record) -> str:
    """What to do about a record of another version: fit again, deleting the run's fits folder when the record is a
    file under one."""
    if not isinstance(record, (str, Path)):
        return "make it again with this mlmi's fit stage (mlmi.run.stages.fit)"
    folder = next((parent for parent in Path(record).parents if parent.name == "fits"), Path(record).parent)
    return f"rerun the fit step (delete {folder})"
