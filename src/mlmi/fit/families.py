"""The response families of mlmi's generalized linear mixed models, to lme4's definitions.

A family gives what ``glmer``'s response module (lme4's ``glmFamily.cpp``, ``respModule.cpp``) uses:
the inverse link and its derivative, the variance function, the deviance residuals, the
family's AIC (the conditional -2 log-likelihood the Laplace deviance is made of) and R's
starting values (``family$initialize``). Numbers are clamped exactly where lme4 clamps them
(the logit's inverse to [eps, 1 - eps], the probit's to <= 1 - eps, the log's to >= eps, the
binomial variance to >= eps), so that the deviance is lme4's to rounding.

Binomial responses come in R's three forms, all reduced to a proportion ``y`` with ``weights``
(the number of trials times any prior weight), as R's ``binomial()$initialize`` does:
0/1 outcomes (weights 1), proportions with the number of trials as weights, and
``cbind(successes, failures)``.
"""
from dataclasses import dataclass

import numpy as np
from scipy import special

EPS = np.finfo(float).eps
#: The links each family takes, its default first (R's).
LINKS = {"binomial": ("logit", "probit"), "poisson": ("log",)}


@dataclass(frozen=True)
class Response:
    """A GLMM's response as lme4 holds it: ``y`` (a proportion for binomial), prior ``weights`` and ``n``
    (R's binomial ``n``: the number of trials for ``cbind``, 1 otherwise; what the family's AIC reads)."""

    y: np.ndarray
    weights: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class Family:
    """A family and link of lme4's: the functions PIRLS and the Laplace deviance need."""

    name: str
    link: str

    def __post_init__(self):
        if self.name not in LINKS:
            raise ValueError(f"model.family {self.name!r}: mlmi fits {', '.join(LINKS)}")
        if self.link not in LINKS[self.name]:
            raise ValueError(f"model.link {self.link!r}: family {self.name} takes {' or '.join(LINKS[self.name])}")

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """eta = g(mu)."""
        return {"logit": special.logit, "probit": special.ndtri, "log": np.log}[self.link](mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """mu = g^-1(eta), clamped as lme4 clamps it."""
        if self.link == "logit":
            return np.clip(special.expit(eta), EPS, 1 - EPS)
        if self.link == "probit":
            return np.minimum(special.ndtr(eta), 1 - EPS)
        return np.maximum(np.exp(eta), EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta, clamped as lme4 clamps it."""
        if self.link == "logit":
            e = np.exp(-np.abs(eta))
            return np.maximum(e / (1 + e) ** 2, EPS)
        if self.link == "probit":
            return np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)
        return np.maximum(np.exp(eta), EPS)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """The variance function: mu (1 - mu), at least eps, for binomial; mu for Poisson."""
        return np.maximum(mu * (1 - mu), EPS) if self.name == "binomial" else mu

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The squared deviance residuals (R's ``family$dev.resids``), prior weights included."""
        if self.name == "binomial":
            return 2 * weights * (_y_log_y(y, mu) + _y_log_y(1 - y, 1 - mu))
        return 2 * weights * (_y_log_y(y, mu) - (y - mu))

    def aic(self, response: Response, mu: np.ndarray) -> float:
        """The family's ``aic``: -2 times the (prior-weighted) log-likelihood of the response at mu.

        Binomial as lme4's ``binomialDist::aic``: the trials m are ``n`` where any exceeds 1, else the
        weights; successes round(m y) of round(m) trials, each weighted by weights / m."""
        y, weights = response.y, response.weights
        if self.name == "poisson":
            return float(-2 * np.sum(weights * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))))
        m = response.n if np.any(response.n > 1) else weights
        successes, trials = np.rint(m * y), np.rint(m)
        log_density = (special.gammaln(trials + 1) - special.gammaln(successes + 1)
                       - special.gammaln(trials - successes + 1)
                       + special.xlogy(successes, mu) + special.xlog1py(trials - successes, -mu))
        share = np.divide(weights, m, out=np.zeros_like(m), where=m > 0)
        return float(-2 * np.sum(share * log_density))

    def mustart(self, response: Response) -> np.ndarray:
        """R's starting means (``family$initialize``): (weights y + 1/2) / (weights + 1) for binomial, y + 0.1
        for Poisson."""
        if self.name == "binomial":
            return (response.weights * response.y + 0.5) / (response.weights + 1)
        return response.y + 0.1


def family_of(name: str, link: str | None = None) -> Family:
    """The family ``name`` with ``link``, or with R's default link (logit for binomial, log for Poisson)."""
    return Family(name, link or LINKS.get(name, (None,))[0])


def _y_log_y(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y log(y / mu), 0 where y is 0 (lme4's ``Y_log_Y``)."""
    ratio = np.divide(y, mu, out=np.zeros_like(y, dtype=float), where=y != 0)
    return y * np.log(np.where(ratio > 0, ratio, 1.0))


def binomial_response(successes: np.ndarray, failures: np.ndarray | None = None,
                      weights: np.ndarray | None = None) -> Response:
    """R's binomial response from 0/1 outcomes or proportions (``successes`` alone, with ``weights`` the number of
    trials of a proportion) or from ``cbind(successes, failures)``: a proportion with the trials as weights."""
    prior = np.ones(len(successes)) if weights is None else np.asarray(weights, dtype=float)
    successes = np.asarray(successes, dtype=float)
    if failures is None:
        return Response(np.where(prior == 0, 0.0, successes), prior, np.ones(len(successes)))
    trials = successes + np.asarray(failures, dtype=float)
    y = np.divide(successes, trials, out=np.zeros_like(trials), where=trials > 0)
    return Response(y, prior * trials, trials)


def response_problem(family: str, name: str, values: np.ndarray, failures: np.ndarray | None = None,
                     weights: np.ndarray | None = None) -> str | None:
    """Why the response column ``name`` does not fit ``family``, in one line for an ``mlmi:`` error, or None.

    Binomial: 0/1 outcomes; a proportion in [0, 1] only with the number of trials as weights, and then a whole
    number of successes (R warns, mlmi refuses); ``cbind`` counts whole and non-negative. Poisson: whole,
    non-negative counts. Weights: finite and non-negative."""
    values = np.asarray(values, dtype=float)
    if weights is not None and (not np.all(np.isfinite(weights)) or np.any(np.asarray(weights) < 0)):
        return "model.weights: the weights must be finite and non-negative"
    if family == "poisson" or failures is not None:
        columns = [(name, values)] + ([] if failures is None else [("failures of cbind()", np.asarray(failures))])
        for label, column in columns:
            if np.any(column < 0) or np.any(column != np.round(column)):
                kind = "a Poisson outcome" if family == "poisson" else "cbind(successes, failures)"
                return f"model.formula: response {label!r} must hold whole non-negative counts for {kind}"
        return None
    if weights is None:
        if not np.all(np.isin(values, (0.0, 1.0))):
            return (f"model.formula: response {name!r} must be 0/1 for family binomial (a proportion needs "
                    "model.weights, the number of trials; counts need cbind(successes, failures))")
        return None
    if np.any((values < 0) | (values > 1)):
        return f"model.formula: response {name!r} must be a proportion in [0, 1] for family binomial with weights"
    successes = values * np.asarray(weights, dtype=float)
    if np.any(np.abs(successes - np.round(successes)) > 1e-3):
        return (f"model.formula: response {name!r} times model.weights must be a whole number of successes "
                "(a proportion of the trials given as weights)")
    return None
