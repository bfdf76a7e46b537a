"""The sampling covariance of one fit's variance parameters, on scales where it is near normal.

A fit estimates the random effects' SDs and correlations and the residual SD. Their Wald covariance comes from
the observed information of the deviance (-2 log-likelihood, or the REML criterion) in the unprofiled
parameters omega = (theta, s), s = log sigma^2, and the delta method carries it to

    phi = (per random term: log sd_j of each effect, atanh(cor_ij) of each pair; then log sigma)

(the order of broom.mixed's ``sd__``, ``cor__`` and ``sd__Observation`` rows, term after term in lme4's order;
theta is each term's lower triangle of Lambda, term after term, so J is block diagonal in theta), where a Wald interval is far better
than on the SD or correlation itself (bounded at 0 and +-1). docs/variance-components.md derives it:

    D(theta, s) = A(theta) + pwrss(theta) exp(-s) + dof s          (dof = n for ML, n - p for REML)

so, with the profiled deviance's Hessian H_p (what lme4 minimises) and g = grad of log sigma2_hat(theta),

    Cov(theta)    = 2 H_p^-1
    Cov(theta, s) = 2 H_p^-1 g
    Var(s)        = 2 / dof + 2 g' H_p^-1 g

and Cov(phi) = J Cov(omega) J' with J = d phi / d omega (exact, from Lambda). Under ML the fixed effects are
profiled out, which leaves the (theta, s) block of the full inverse information unchanged; under REML they are
integrated out. A fit on the boundary (a variance at zero, a correlation at +-1) has no such interval: its
covariance is None, with the reason in ``problem``.
"""
import numpy as np

from mlmi.fit import deviance
from mlmi.fit.record import scale_of

#: Step of the central differences of the profiled deviance and of log sigma^2 in theta (lme4's ``deriv12``).
STEP = 1e-4


def parameter_names(terms: list[str]) -> list[str]:
    """broom.mixed's names of one random term's variance parameters: ``sd__`` per effect, ``cor__a.b`` per pair."""
    pairs = [f"cor__{terms[i]}.{terms[j]}" for i in range(len(terms)) for j in range(i + 1, len(terms))]
    return [f"sd__{t}" for t in terms] + pairs


def _lambdas(theta: np.ndarray, random_terms: list[tuple[str, list[str]]]) -> list[np.ndarray]:
    """Each random term's Lambda from theta (its lower triangle, term after term)."""
    return deviance.lambdas(np.asarray(theta, dtype=float), [len(names) for _, names in random_terms])


def transformed(theta: np.ndarray, sigma2: float, random_terms: list[tuple[str, list[str]]]) -> np.ndarray:
    """phi of the module docstring at (theta, sigma^2): per term log SDs and Fisher z of the correlations, then
    log sigma."""
    parts = []
    for lam in _lambdas(theta, random_terms):
        psi = lam @ lam.T
        sd = np.sqrt(np.diag(psi))
        rows, cols = np.triu_indices(len(sd), k=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts += [0.5 * np.log(sigma2) + np.log(sd), np.arctanh(psi[rows, cols] / (sd[rows] * sd[cols]))]
    return np.concatenate([*parts, [0.5 * np.log(sigma2)]])


def _term_jacobian(lam: np.ndarray) -> np.ndarray:
    """d (log sd, atanh cor) / d theta of one term, and d log sd / d s in the last column, from Psi = Lambda Lambda'
    (d Psi / d Lambda_ab = E_ab Lambda' + Lambda E_ba)."""
    q = len(lam)
    psi = lam @ lam.T
    var = np.diag(psi)
    rows, cols = np.triu_indices(q, k=1)
    cor = psi[rows, cols] / np.sqrt(var[rows] * var[cols])
    J = np.zeros((q + len(rows), deviance.theta_size(q) + 1))
    for index, (a, b) in enumerate(zip(*np.tril_indices(q))):
        unit = np.zeros((q, q))
        unit[a, b] = 1.0
        dpsi = unit @ lam.T + lam @ unit.T
        dvar = np.diag(dpsi)
        J[:q, index] = 0.5 * dvar / var
        dcor = dpsi[rows, cols] / np.sqrt(var[rows] * var[cols]) - 0.5 * cor * (dvar[rows] / var[rows]
                                                                              + dvar[cols] / var[cols])
        J[q:, index] = dcor / (1 - cor**2)
    J[:q, -1] = 0.5            # log sd_j = s/2 + log(Psi_jj)/2
    return J


def jacobian(theta: np.ndarray, random_terms: list[tuple[str, list[str]]]) -> np.ndarray:
    """d phi / d (theta, s), s = log sigma^2: block diagonal in the terms' theta, every SD's and sigma's row 1/2
    in s."""
    blocks = [_term_jacobian(lam) for lam in _lambdas(theta, random_terms)]
    J = np.zeros((sum(len(b) for b in blocks) + 1, len(theta) + 1))
    row = col = 0
    for block in blocks:
        rows, cols = block.shape[0], block.shape[1] - 1
        J[row:row + rows, col:col + cols] = block[:, :-1]
        J[row:row + rows, -1] = block[:, -1]
        row, col = row + rows, col + cols
    J[-1, -1] = 0.5            # log sigma = s/2
    return J


def omega_covariance(theta: np.ndarray, objective) -> np.ndarray:
    """Cov of (theta, log sigma^2): twice the inverse Hessian of the unprofiled deviance, from the profiled one
    (module docstring). ``objective`` is the fit's profiled deviance (``mlmi.fit.deviance.OneFactor`` or
    ``mlmi.fit.deviance_factors.Terms``: ``criterion``, ``solve``, ``n``, ``p``, ``reml``). LinAlgError when the
    profiled Hessian is not positive definite."""
    theta = np.asarray(theta, dtype=float)
    h_inv = np.linalg.inv(np.linalg.cholesky(deviance.hessian(objective.criterion, theta, STEP))).T
    h_inv = h_inv @ h_inv.T
    g = deviance.gradient(lambda at: np.log(objective.solve(at).sigma2), theta, STEP)
    dof = objective.n - objective.p if objective.reml else objective.n
    cov = np.empty((len(theta) + 1, len(theta) + 1))
    cov[:-1, :-1] = 2 * h_inv
    cov[:-1, -1] = cov[-1, :-1] = 2 * h_inv @ g
    cov[-1, -1] = 2 / dof + 2 * g @ h_inv @ g
    return cov


def wald_record(theta: np.ndarray, sigma2: float, objective, random_terms: list[tuple[str, list[str]]],
                singular: bool) -> dict:
    """The fit record's ``variance_parameters``: each parameter's grouping factor (``Residual`` for sigma), name,
    scale, phi and their covariance (None, and ``problem`` saying why, on the boundary or where the information is
    not positive definite). ``random_terms`` are (grouping factor, effect names) per random term, theta's order."""
    groups, names = [], []
    for group, effects in random_terms:
        term_names = parameter_names(effects)
        groups += [group] * len(term_names)
        names += term_names
    groups, names = groups + ["Residual"], names + ["sd__Observation"]
    problem = None
    if singular:
        problem = ("singular fit: a variance at zero or a correlation at +-1 has no Wald interval on the log/atanh "
                   "scale")
    else:
        try:
            J = jacobian(theta, random_terms)
            cov = J @ omega_covariance(theta, objective) @ J.T
        except np.linalg.LinAlgError:
            problem = "the deviance's Hessian in theta is not positive definite at the optimum"
    return {"groups": groups, "terms": names, "scales": [scale_of(name) for name in names],
            "estimate": transformed(theta, sigma2, random_terms).tolist(), "vcov": None if problem else cov.tolist(),
            "problem": problem}
