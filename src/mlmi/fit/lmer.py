"""Fit one linear mixed model and report it to lme4's definitions (design §5.1).

As ``lmer`` does, lme4's own profiled deviance (``mlmi.fit.deviance``, defined on the boundary
too) is minimised from lme4's start by BOBYQA (nlopt, lme4's default ``nloptwrap``), and
every reported number (fixed-effect covariance, conditional modes and variances, criteria,
convergence) comes from lme4's solution there, so that a fit record reads like an
``lmerMod``. statsmodels' MixedLM is only a rescue start for a fit that has not converged,
imported then and not before: importing it costs more than most fits.
"""
import functools
import time
import warnings
from types import SimpleNamespace

import nlopt
import numpy as np
import pandas as pd
import scipy
from threadpoolctl import ThreadpoolController

from mlmi.fit import deviance
from mlmi.fit.formula import MixedFormula, fixed_design, parse_formula
from mlmi.fit.lmer_checks import aliased_columns, random_effects_problem, rank_message, term_sizes
from mlmi.fit.random_design import random_effects
from mlmi.fit.record import GRAD_TOL, failure
from mlmi.fit.vc_wald import STEP, wald_record

#: lme4's ``isSingular`` tolerance on the relative covariance factor's diagonal.
SINGULAR_TOL = 1e-4
#: Where a variance stuck on its bound restarts (in units of sigma: theta = sd / sigma).
BOUNDARY_ESCAPE = 0.1
#: Step of the finite-difference Hessian that scales the gradient check (lme4's ``deriv12`` delta): the Wald
#: covariance's (``mlmi.fit.vc_wald.STEP``), so that the kept attempt's Hessian is computed once and serves both.
HESSIAN_STEP = STEP
#: Attempts whose criteria differ by less than this (deviance units) found the same optimum.
CRITERION_TOL = 1e-6
#: Jittered restarts of a fit not yet converged: their number, and the jitter's SD relative to |theta| + 0.1.
JITTERED_STARTS = 2
JITTER_SD = 0.5
#: Seed of that jitter: a constant, so the same data always give the same record.
JITTER_SEED = 20261123
#: Each optimizer's tolerances and iteration limit (lme4's ``optCtrl``). BOBYQA's are 100 times tighter than
#: ``nloptwrap``'s defaults (1e-8), which stop up to ~2e-6 from the optimum in theta; at 1e-10, within ~2e-7.
#: The restart off a bound is nlopt's L-BFGS (``LD_LBFGS``) on the deviance's gradient, to scipy's L-BFGS-B's relative
#: tolerance: nlopt is loaded for BOBYQA already, and scipy.optimize (0.4 s to import, with scipy.linalg) is then
#: imported only by a fit that needs a rescue.
OPTIONS = {"BOBYQA": {"xtol_abs": 1e-10, "ftol_abs": 1e-10, "maxeval": 100_000},
           "L-BFGS": {"xtol_abs": 1e-10, "ftol_rel": 1e-13, "maxeval": 4000},
           "L-BFGS-B": {"ftol": 1e-13, "gtol": 1e-6, "maxiter": 2000},
           "Nelder-Mead": {"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000},
           "Powell": {"xtol": 1e-9, "ftol": 1e-13, "maxiter": 4000}}


class Design:
    """Response, fixed and random design matrices and groups of one formula on one data set, after lme4's
    checks: aliased fixed-effect columns dropped (named in ``dropped``), unidentifiable random effects refused
    (``residual``: with lmer's checks of levels against rows, which glmer does not make)."""

    def __init__(self, data: pd.DataFrame, formula: MixedFormula, residual: bool = True):
        missing = [v for v in formula.variables(data.columns) if data[v].isna().any()]
        if missing:
            raise ValueError(f"missing values in model variables {missing}; fit complete data only")
        fixed = fixed_design(formula.fixed, data)
        aliased = aliased_columns(fixed.X)
        keep = [j for j in range(len(fixed.names)) if j not in aliased]
        self.fe_names, self.X, self.factors = [fixed.names[j] for j in keep], fixed.X[:, keep], fixed.factors
        self.dropped = [fixed.names[j] for j in aliased]
        self.y = data[formula.response].to_numpy(dtype=float)
        self.structure = structure = random_effects(data, formula)
        problem = random_effects_problem(len(data), term_sizes(structure), residual)
        if problem:
            raise ValueError(problem)
        self.single = len(structure.blocks) == 1
        block, factor = structure.blocks[0], structure.factors[0]
        self.Z, self.re_names, self.group, self.levels = block.Z, block.names, factor.name, factor.levels
        self.codes = factor.codes
        self.groups = data[factor.name].to_numpy() if factor.name in data.columns else factor.codes
        self.has_slopes = any(name != "(Intercept)" for b in structure.blocks for name in b.names)

    def objective(self, reml: bool):
        """lme4's profiled deviance of this design as a function of theta (``mkLmerDevfun``): the dense
        per-group path for one random term, the two-block sparse one for several."""
        if self.single:
            return deviance.OneFactor(cross_products(self), reml)
        from mlmi.fit import deviance_factors  # here: a fit of one term pays for no scipy.sparse nor scipy.linalg

        return deviance_factors.Terms(self.y, self.X, self.structure, reml)


def complete_cases(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    """Rows with no missing value in the model's variables (listwise deletion)."""
    used = parse_formula(formula).variables(data.columns)
    return data.loc[data[used].notna().all(axis=1)].reset_index(drop=True)


def fit_mixed(data: pd.DataFrame, formula: str, reml: bool = True, label: str = "") -> dict:
    """Fit ``formula`` to complete ``data`` and return a self-describing, JSON-ready record.

    lme4's profiled deviance is minimised by BOBYQA from lme4's own start (theta = identity), as
    ``lmer`` does, and the best optimum of all attempts is kept. The record holds fixed
    effects with lme4's standard errors and covariance, variance components, criteria
    (REML criterion, logLik, AIC, BIC, npar), conditional modes with conditional variances,
    and the convergence verdict with the warnings true of the kept fit (design §5.1); each attempt
    keeps its own optimizer's message and warnings. Aliased fixed-effect columns are dropped and
    named in ``dropped``, as lme4 does; random effects the data cannot identify raise ValueError
    with lme4's words (``mlmi.fit.lmer_checks``). A fit that does not converge is retried with other
    optimizers and starts (``RESCUES``); when none converges the record is that of the lowest
    criterion, with ``convergence.converged`` false.
    """
    return fit_design(Design(data, parse_formula(formula)), formula, reml, label)


def fit_design(design: Design, formula: str, reml: bool = True, label: str = "") -> dict:
    """``fit_mixed`` of a Design already built (of ``formula`` on the data): the fit stage builds it once for the
    fit and its R² (``mlmi.fit.r2.fit_r2``)."""
    start = time.perf_counter()
    with _threadpools().limit(limits=1):
        objective = Evaluations(design.objective(reml))
        attempts, skipped = _optimize(design, objective)
        theta = np.array(_kept(attempts)["theta"])
        solution = objective.solve(theta)
        record = _describe(design, solution, theta, reml)
        record["variance_parameters"] = wald_record(theta, solution.sigma2, objective, _term_names(design),
                                                    singular=bool(_on_bound(theta, objective.bounds)))
    record["convergence"] = {**_convergence(theta, attempts, design, objective.bounds), "skipped_starts": skipped}
    record.update(label=label, formula=formula, fit_seconds=time.perf_counter() - start,
                  versions={"nlopt": nlopt.__version__, "scipy": scipy.__version__})
    return record


@functools.cache
def _threadpools() -> ThreadpoolController:
    """The BLAS and OpenMP thread pools of this process, found once (finding them costs more than a small fit's
    deviance evaluations); every fit runs its many small matrix products in one thread."""
    return ThreadpoolController()


class Evaluations:
    """A fit's deviance (``mlmi.fit.deviance.OneFactor`` or ``mlmi.fit.deviance_factors.Terms``: everything of it is
    here as there) that remembers every value it has computed, by theta to the last bit.

    A theta evaluated again costs nothing: the gradient check's Hessian at the kept attempt is the Wald covariance's
    (``mlmi.fit.vc_wald``, the same points), L-BFGS's gradient at its last point is the check's. ``criteria`` gives
    many points at once, by the deviance's own ``criteria`` where it has one; the values are the same numbers as
    one by one, so nothing a fit reports depends on which is used."""

    def __init__(self, objective):
        self.objective = objective
        self._values = {}
        self._many = getattr(objective, "criteria", None)

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def criterion(self, theta: np.ndarray) -> float:
        """The deviance at theta."""
        return float(self.criteria(np.asarray(theta, dtype=float)[None, :])[0])

    def criteria(self, thetas: np.ndarray) -> np.ndarray:
        """The deviance at each row of ``thetas``, each distinct row computed once in the fit's lifetime."""
        thetas = np.asarray(thetas, dtype=float)
        keys = [theta.tobytes() for theta in thetas]
        new = {key: theta for key, theta in zip(keys, thetas) if key not in self._values}
        if new:
            points = np.array(list(new.values()))
            values = (self._many(points) if self._many is not None else
                      [self.objective.criterion(point) for point in points])
            self._values.update(zip(new, map(float, values)))
        return np.array([self._values[key] for key in keys])


def _term_names(design: Design) -> list[tuple[str, list[str]]]:
    """(grouping factor, effect names) of each random term, in lme4's term order (theta's order)."""
    return [(design.structure.factors[block.factor].name, block.names) for block in design.structure.blocks]


def _optimize(design: Design, objective) -> tuple[list[dict], list[dict]]:
    """Minimise lme4's deviance from lme4's start by BOBYQA; every attempt is recorded.

    A variance that ends on its bound 0 may be a stationary point by symmetry even when the deviance
    falls away from it, so each such element is restarted off the bound. Then, until an attempt that
    converged has the lowest criterion found, the rescues of ``RESCUES`` follow one by one. A rescue whose
    start cannot be made (statsmodels failing, or a design it cannot fit) is no attempt: it is listed with its
    warnings among the skipped starts, the second list returned.
    """
    skipped = []
    attempts = [_minimize(objective, objective.start, "lme4 default", "BOBYQA")]
    best = _best(attempts)
    for i in _on_bound(np.array(best["theta"]), objective.bounds):
        escape = np.array(best["theta"])
        escape[i] = BOUNDARY_ESCAPE
        attempts.append(_minimize(objective, escape, f"off the bound in theta[{i}]", "L-BFGS"))
    for method, start, move in RESCUES:
        if _settled(attempts):
            break
        best = _best(attempts)
        theta0, start_warnings = move(np.array(best["theta"]), design, objective)
        if theta0 is None:
            skipped.append({"start": start.format(n=attempts.index(best) + 1), "warnings": start_warnings})
            continue
        attempts.append(_minimize(objective, _feasible(theta0, objective.bounds),
                                  start.format(n=attempts.index(best) + 1), method))
        attempts[-1]["warnings"] = start_warnings + attempts[-1]["warnings"]
    return attempts, skipped


def _best(attempts: list[dict]) -> dict:
    """The attempt with the lowest criterion (the first of equals, so the choice is reproducible; NaN last)."""
    return min(attempts, key=lambda attempt: np.nan_to_num(attempt["criterion"], nan=np.inf))


def _passes(attempt: dict) -> bool:
    """Whether an attempt converged, judged as lme4's ``checkConv`` does: max|grad| below its tolerance.

    The optimizer's own flag is not required: L-BFGS-B ends with ABNORMAL_TERMINATION_IN_LNSRCH when
    rounding stops its line search at the optimum, where the gradient is ~1e-6."""
    return bool(np.isfinite(attempt["criterion"])) and attempt["max_abs_gradient"] < GRAD_TOL


def _settled(attempts: list[dict]) -> bool:
    """Whether an attempt that converged reaches the lowest criterion found (within CRITERION_TOL)."""
    converged = [attempt for attempt in attempts if _passes(attempt)]
    return bool(converged) and _best(converged)["criterion"] <= _best(attempts)["criterion"] + CRITERION_TOL


def _kept(attempts: list[dict]) -> dict:
    """The attempt a fit reports: the best that converged once settled, else the lowest criterion."""
    return _best([attempt for attempt in attempts if _passes(attempt)] if _settled(attempts) else attempts)


def _outcome(attempt: dict, kept: dict) -> str:
    """Why an attempt was kept, or not, in a few words for the record."""
    if attempt is kept:
        return "kept" if _passes(kept) else "kept (the lowest criterion), but not converged"
    if not _passes(attempt):
        return (f"not converged: max|grad| = {attempt['max_abs_gradient']:.3g} (tol = {GRAD_TOL}); "
                f"{attempt['optimizer']} said: {attempt['message']}")
    return f"converged, criterion {attempt['criterion'] - kept['criterion']:.3g} above the kept attempt's"


def _same(theta: np.ndarray, objective) -> np.ndarray:
    """The best attempt's theta itself."""
    return np.asarray(theta)


def _identity(theta: np.ndarray, objective) -> np.ndarray:
    """lme4's start: Lambda = identity (random effects with the residual's SD, uncorrelated)."""
    return objective.start


def _uncorrelated(theta: np.ndarray, objective) -> np.ndarray:
    """theta with the same random-effect SDs and every correlation zero."""
    return objective.uncorrelated(theta)


def _jittered(j: int):
    """The j-th jitter of theta: each element moved by N(0, JITTER_SD) times (|theta| + 0.1), a fixed seed."""
    def move(theta: np.ndarray, objective) -> np.ndarray:
        noise = np.random.default_rng(JITTER_SEED).normal(0, JITTER_SD, (JITTERED_STARTS, len(theta)))[j]
        return theta + noise * (np.abs(theta) + BOUNDARY_ESCAPE)
    return move


def _feasible(theta: np.ndarray, bounds: list) -> np.ndarray:
    """theta inside lme4's bounds (negative diagonal elements set to 0)."""
    lower = [-np.inf if low is None else low for low, _ in bounds]
    return np.maximum(theta, lower)


def _from_best(move):
    """A rescue start computed from the best attempt's theta and the objective alone (no warnings of its own)."""
    return lambda theta, design, objective: (move(theta, objective), [])


#: Rescues of a fit not yet converged, in order: optimizer, start (``{n}``: the best attempt so far, from 1)
#: and the start, a function of that attempt's theta, the design and the objective giving (theta0 or None,
#: warnings).
#: A gradient-based polish of the best point first, then statsmodels' own optimum (a different algorithm's
#: answer), derivative-free optimizers from the best point, since a noisy gradient is the usual trouble;
#: then starts away from it: no correlations, lme4's, jittered.
RESCUES = [("L-BFGS-B", "optimum of attempt {n}", _from_best(_same)),
           ("L-BFGS-B", "statsmodels MixedLM", lambda theta, design, objective: _statsmodels_start(design, objective)),
           ("Nelder-Mead", "optimum of attempt {n}", _from_best(_same)),
           ("Powell", "optimum of attempt {n}", _from_best(_same)),
           ("L-BFGS-B", "optimum of attempt {n} without correlations", _from_best(_uncorrelated)),
           ("Nelder-Mead", "lme4 default", _from_best(_identity)),
           *[("L-BFGS-B", f"optimum of attempt {{n}}, jittered ({j + 1})", _from_best(_jittered(j)))
             for j in range(JITTERED_STARTS)]]


def _on_bound(theta: np.ndarray, bounds: list) -> list[int]:
    """Indices of theta's diagonal elements that sit on their bound 0 (lme4's isSingular test)."""
    bounded = [low is not None for low, _ in bounds]
    return [i for i, (is_diag, value) in enumerate(zip(bounded, theta)) if is_diag and value < SINGULAR_TOL]


def _statsmodels_start(design: Design, objective):
    """theta of statsmodels' own MixedLM fit, or None (with its warnings) when it fails or cannot fit the
    design (several random terms)."""
    if not design.single:
        return None, []
    import statsmodels.api as sm  # a rescue only: the import alone costs more than most fits

    reml = objective.reml
    model = sm.MixedLM(design.y, design.X, design.groups, exog_re=design.Z)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            result = model.fit(reml=reml, method="bfgs", gtol=1e-8)
            psi = np.asarray(result.cov_re, dtype=float) / result.scale
            theta = relative_factor(psi)[np.tril_indices(psi.shape[0])]
        except (np.linalg.LinAlgError, ValueError) as error:
            warnings.warn(f"statsmodels MixedLM failed: {error}")
            theta = None
    return theta, [f"statsmodels MixedLM: {w.message}" for w in seen]


def _minimize(objective, theta0: np.ndarray, start: str, method: str) -> dict:
    """One bounded minimisation of the deviance; returns the attempt's record."""
    value = lambda theta: _deviance(theta, objective)  # noqa: E731
    bounds = objective.bounds
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if method == "BOBYQA":
            result = _nlopt(nlopt.LN_BOBYQA, lambda theta, _grad: value(theta), theta0, bounds, OPTIONS[method])
        elif method == "L-BFGS":
            result = _nlopt(nlopt.LD_LBFGS, _with_gradient(objective), theta0, bounds, OPTIONS[method])
        else:
            from scipy import optimize  # here: a fit that BOBYQA settles needs none of its ~0.1 s import

            if method == "L-BFGS-B":
                result = optimize.minimize(lambda theta: _deviance_and_gradient(theta, objective), theta0,
                                           jac=True, method=method, bounds=bounds, options=OPTIONS[method])
            else:
                result = optimize.minimize(value, theta0, method=method, bounds=bounds, options=OPTIONS[method])
    theta = np.asarray(result.x, dtype=float)
    return {"start": start, "optimizer": method, "criterion": float(result.fun), "theta": theta.tolist(),
            "max_abs_gradient": _max_gradient(theta, objective), "converged": bool(result.success),
            "message": str(result.message), "warnings": [f"{method}: {w.message}" for w in seen]}


def _nlopt(algorithm: int, objective, theta0: np.ndarray, bounds: list, options: dict) -> SimpleNamespace:
    """nlopt's ``algorithm`` (BOBYQA with ``nloptwrap``'s settings, or L-BFGS) on ``objective(theta, grad)`` from
    theta0 with ``options`` (its ``set_<name>`` values), as scipy's result has it (x, fun, success, message): the
    best point it evaluated, also when nlopt stops on round-off (which lme4 reports as a warning, not a failure)
    or fails (the attempt is then not converged, and the rescues follow)."""
    best = {"fun": np.inf, "x": np.asarray(theta0, dtype=float)}

    def counted(theta, grad):
        value = objective(theta, grad)
        if value < best["fun"]:
            best.update(fun=value, x=np.array(theta))
        return value if np.isfinite(value) else np.finfo(float).max

    opt = nlopt.opt(algorithm, len(theta0))
    opt.set_lower_bounds([-np.inf if low is None else low for low, _ in bounds])
    opt.set_min_objective(counted)
    for name, setting in options.items():
        getattr(opt, f"set_{name}")(setting)
    try:
        opt.optimize(np.asarray(theta0, dtype=float))
        code = opt.last_optimize_result()
        success, message = code > 0, NLOPT_RESULTS.get(code, f"nlopt result {code}")
    except nlopt.RoundoffLimited:
        success, message = True, "NLOPT_ROUNDOFF_LIMITED: optimization stopped by round-off"
    except nlopt.runtime_error as error:
        success, message = False, f"NLOPT_FAILURE: {error}"
    return SimpleNamespace(x=best["x"], fun=best["fun"], success=success, message=message)


def _with_gradient(objective: "Evaluations"):
    """The deviance as nlopt's gradient-based algorithms call it: its value, with the gradient written into
    ``grad``."""
    def value(theta, grad):
        deviance_value, gradient = _deviance_and_gradient(np.asarray(theta, dtype=float), objective)
        if grad.size:
            grad[:] = gradient
        return deviance_value
    return value


#: nlopt's result codes, by the names lme4's ``nloptwrap`` reports.
NLOPT_RESULTS = {1: "NLOPT_SUCCESS", 2: "NLOPT_STOPVAL_REACHED", 3: "NLOPT_FTOL_REACHED", 4: "NLOPT_XTOL_REACHED",
                 5: "NLOPT_MAXEVAL_REACHED", 6: "NLOPT_MAXTIME_REACHED"}


def _max_gradient(theta: np.ndarray, objective) -> float:
    """lme4's max|grad| (``checkConv``): per element the smaller of the projected gradient and the gradient
    scaled by the Hessian's inverse Cholesky factor; the raw gradient alone where the Hessian is not positive
    definite. The scaling judges a badly scaled parameter (an uncentred random slope, say) by what a Newton
    step would gain rather than by its units."""
    grad = deviance.projected(_gradient(theta, objective), theta, objective.bounds)
    try:
        hessian = deviance.hessian(objective.criterion, theta, HESSIAN_STEP, many=objective.criteria)
        scaled = np.linalg.solve(np.linalg.cholesky(hessian).T, grad)
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(grad)))
    return float(np.max(np.minimum(np.abs(scaled), np.abs(grad))))


def _gradient(theta: np.ndarray, objective: Evaluations) -> np.ndarray:
    """The deviance's gradient at theta (central differences, its points evaluated at once)."""
    return deviance.gradient(objective.criterion, theta, many=objective.criteria)


def _deviance(theta: np.ndarray, objective) -> float:
    """The deviance, or +inf where rounding made it NaN, so that every optimizer steps back from there."""
    return _finite(objective.criterion(theta))


def _deviance_and_gradient(theta: np.ndarray, objective: Evaluations) -> tuple[float, np.ndarray]:
    """``_deviance`` and ``_gradient`` at theta, their points evaluated at once (what L-BFGS asks at every step)."""
    value, grad = deviance.value_and_gradient(objective.criterion, theta, many=objective.criteria)
    return _finite(value), grad


def _finite(value: float) -> float:
    """A deviance, or +inf for a NaN or infinite one."""
    return value if np.isfinite(value) else np.inf


def _describe(design: Design, solution, theta: np.ndarray, reml: bool) -> dict:
    """Everything design §5.1 lists, from lme4's solution at the optimum. A model of one random term keeps
    ``random_effects`` and ``ranef`` as one mapping each; with several terms each is a list of them, one per
    term in lme4's order (``random_parts``)."""
    random = random_parts(design, solution, theta)
    se = np.sqrt(np.diag(solution.vcov))
    loglik = -solution.deviance / 2
    n_obs = len(design.y)
    npar = len(solution.beta) + len(theta) + 1
    return {
        "reml": reml,
        "n_obs": n_obs,
        **grouping(design),
        "dropped": design.dropped,
        "fixed_effects": [{"term": t, "estimate": b, "std_error": s, "statistic": b / s}
                          for t, b, s in zip(design.fe_names, solution.beta.tolist(), se.tolist())],
        "vcov": {"terms": design.fe_names, "matrix": solution.vcov.tolist()},
        "factors": design.factors,
        "random_effects": random["random_effects"],
        "sigma": float(np.sqrt(solution.sigma2)),
        "theta": theta.tolist(),
        "reml_criterion": solution.deviance if reml else None,
        "deviance": None if reml else solution.deviance,
        "loglik": loglik,
        "npar": npar,
        "aic": -2 * loglik + 2 * npar,
        "bic": -2 * loglik + np.log(n_obs) * npar,
        "dfcom": n_obs - npar,
        "ranef": random["ranef"],
    }


def grouping(design: Design) -> dict:
    """The record's ``n_groups`` (levels of each grouping factor) and ``n_levels`` (how many factors, as
    merTools' ``n.lvls``)."""
    return {"n_groups": {factor.name: factor.n_levels for factor in design.structure.factors},
            "n_levels": len(design.structure.factors)}


def random_parts(design: Design, solution, theta: np.ndarray) -> dict:
    """The variance components (lme4's ``VarCorr``) and conditional modes with their variances (``ranef``) per
    random term: one mapping each for one term, lists of them (lme4's term order) for several."""
    if design.single:
        lam = deviance.lambda_of(theta, design.Z.shape[1])
        return {"random_effects": _variance_components(design.group, design.re_names, solution.sigma2 * lam @ lam.T),
                "ranef": _ranef(design.group, design.levels, design.re_names, solution.modes, solution.cond_var)}
    lams = deviance.lambdas(theta, [block.k for block in design.structure.blocks])
    parts = {"random_effects": [], "ranef": []}
    for block, lam, modes, cond_var in zip(design.structure.blocks, lams, solution.modes, solution.cond_var):
        factor = design.structure.factors[block.factor]
        parts["random_effects"].append(_variance_components(factor.name, block.names, solution.sigma2 * lam @ lam.T))
        parts["ranef"].append(_ranef(factor.name, factor.levels, block.names, modes, cond_var))
    return parts


def _ranef(group: str, levels: list, names: list[str], modes: np.ndarray, cond_var: np.ndarray) -> dict:
    """One term's conditional modes (levels x terms) and conditional variances (levels x terms x terms)."""
    return {"group": group, "levels": [_plain(v) for v in levels], "terms": names, "modes": modes.tolist(),
            "cond_var": cond_var.tolist()}


def _convergence(theta: np.ndarray, attempts: list[dict], design: Design, bounds: list) -> dict:
    """The kept attempt's verdict, optimizer, max |gradient| and singular flag, the warnings that are true of
    the kept fit, and every attempt with why it was kept or not.

    ``message`` is the verdict in lme4's terms (its ``checkConv`` on max|grad|), not the optimizer's
    own words: L-BFGS-B says ABNORMAL_TERMINATION_IN_LNSRCH at an optimum it cannot improve on, and
    statsmodels' start warns of its own failures. Those words stay in the attempts' entries
    (``message``, ``warnings``), where they describe what they are about.
    """
    kept = _kept(attempts)
    converged = _passes(kept)
    max_grad = kept["max_abs_gradient"]
    verdict = {"converged": converged, "optimizer": f"{kept['optimizer']} from {kept['start']}",
               "message": (f"converged: max|grad| = {max_grad:.2g} < {GRAD_TOL} (lme4's check)" if converged else
                           f"not converged: max|grad| = {max_grad:.3g}, not below {GRAD_TOL} (lme4's check)"),
               "max_abs_gradient": max_grad, "singular": bool(_on_bound(theta, bounds)), "warnings": [],
               "kept": attempts.index(kept) + 1,
               "attempts": [{**attempt, "outcome": _outcome(attempt, kept)} for attempt in attempts]}
    if design.dropped:
        verdict["warnings"].append(rank_message(design.dropped))
    if not converged:
        verdict["warnings"] += [f"Model failed to converge with max|grad| = {max_grad:.6g} (tol = {GRAD_TOL})",
                                failure(verdict)]
    if verdict["singular"]:
        verdict["warnings"].append(singular_warning(design.has_slopes))
    return verdict


def singular_warning(has_slopes: bool) -> str:
    """lme4's words for a singular fit (a variance at zero, or a correlation at +-1), and what to do about it."""
    advice = ("the random-effects structure may be too complex for the data; consider dropping the random slope "
              "or its correlation" if has_slopes else
              "the groups may differ no more than the residual variation explains; consider a model without "
              "the random intercept")
    return (f"boundary (singular) fit: see help('isSingular'): a random-effect variance is at zero or a "
            f"correlation at +-1; {advice}")


def _plain(value):
    """A numpy scalar as the plain Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value


def _variance_components(group: str, names: list[str], cov_re: np.ndarray) -> dict:
    """One term's SDs, correlations (named ``a.b`` as broom.mixed does) and covariance matrix."""
    sd = np.sqrt(np.diag(cov_re))
    cor = {f"{names[i]}.{names[j]}": float(cov_re[i, j] / (sd[i] * sd[j])) if sd[i] * sd[j] > 0 else float("nan")
           for i in range(len(names)) for j in range(i + 1, len(names))}
    return {"group": group, "terms": names, "sd": dict(zip(names, sd.tolist())), "cor": cor,
            "cov": cov_re.tolist()}


def relative_factor(psi: np.ndarray) -> np.ndarray:
    """lme4's Lambda: lower Cholesky factor of the relative covariance G / sigma^2.

    A semi-definite (singular) psi gets the factor of its eigen-decomposition made
    triangular, so a zero variance shows as a zero on the diagonal.
    """
    try:
        return np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(psi)
        upper = np.linalg.qr((vectors * np.sqrt(np.clip(values, 0, None))).T, mode="r")
        return upper.T * np.where(np.diag(upper) < 0, -1.0, 1.0)


def loglik_at_parameters(data: pd.DataFrame, formula: str, parameters) -> float:
    """The ML log-likelihood of ``formula`` (one random term) on one complete data set at given ``parameters``
    (``terms``, ``beta``, the random effects' covariance ``cov_re`` and ``sigma2``: e.g. estimates pooled over
    imputations, as D3 evaluates them), nothing profiled or optimised (``deviance.loglik_at``). ValueError when the
    data's fixed-effect terms are not the parameters' ``terms``."""
    design = Design(data, parse_formula(formula))
    if design.fe_names != parameters.terms:
        raise ValueError(f"the fixed-effect terms of {formula!r} on an imputed data set ({design.fe_names}) are not "
                         f"those of its fits ({parameters.terms})")
    lam = relative_factor(parameters.cov_re / parameters.sigma2)
    return deviance.loglik_at(lam[np.tril_indices(len(lam))], parameters.beta, parameters.sigma2,
                              cross_products(design))


def cross_products(design: Design) -> deviance.CrossProducts:
    """The per-group cross-products of a design of one random term, all the deviance and the likelihood need of
    the data."""
    return deviance.CrossProducts.of(design.y, design.X, design.Z, _blocks(design))


def _blocks(design: Design) -> list[np.ndarray]:
    """Row indices of each group, in the order of ``design.levels``."""
    order = np.argsort(design.codes, kind="stable")
    bounds = np.searchsorted(design.codes[order], np.arange(len(design.levels)))
    return np.split(order, bounds[1:])
