"""The sampling covariance of one fit's variance parameters, on scales where it is near normal.

A fit estimates the random effects' SDs and correlations and the residual SD. Their Wald covariance comes from
the observed information of the deviance (-2 log-likelihood, or the REML criterion) in the unprofiled
parameters omega = (theta, s), s = log sigma^2, and the delta method carries it to

    phi = (log sd_j for each random term, atanh(cor_ij) for each pair, log sigma)

(the order of broom.mixed's ``sd__``, ``cor__`` and ``sd__Observation`` rows), where a Wald interval is far better
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

from mlmi import deviance

#: Step of the central differences of the profiled deviance and of log sigma^2 in theta (lme4's ``deriv12``).
STEP = 1e-4


def parameter_names(terms: list[str]) -> list[str]:
    """broom.mixed's names of the variance parameters: ``sd__`` per term, ``cor__a.b`` per pair, ``sd__Observation``."""
    pairs = [f"cor__{terms[i]}.{terms[j]}" for i in range(len(terms)) for j in range(i + 1, len(terms))]
    return [f"sd__{t}" for t in terms] + pairs + ["sd__Observation"]


def scales(terms: list[str]) -> list[str]:
    """The scale each parameter of ``parameter_names`` is pooled on: ``log`` for SDs, ``atanh`` for correlations."""
    return ["atanh" if name.startswith("cor__") else "log" for name in parameter_names(terms)]


def transformed(theta: np.ndarray, sigma2: float) -> np.ndarray:
    """phi of the module docstring at (theta, sigma^2): log SDs, Fisher z of the correlations, log sigma."""
    q = deviance.q_of(theta)
    lam = deviance.lambda_of(np.asarray(theta, dtype=float), q)
    psi = lam @ lam.T
    sd = np.sqrt(np.diag(psi))
    rows, cols = np.triu_indices(q, k=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.concatenate([0.5 * np.log(sigma2) + np.log(sd), np.arctanh(psi[rows, cols] / (sd[rows] * sd[cols])),
                               [0.5 * np.log(sigma2)]])


def jacobian(theta: np.ndarray) -> np.ndarray:
    """d phi / d (theta, s), s = log sigma^2, from Psi = Lambda Lambda'
    (d Psi / d Lambda_ab = E_ab Lambda' + Lambda E_ba)."""
    theta = np.asarray(theta, dtype=float)
    q = deviance.q_of(theta)
    lam = deviance.lambda_of(theta, q)
    psi = lam @ lam.T
    var = np.diag(psi)
    rows, cols = np.triu_indices(q, k=1)
    cor = psi[rows, cols] / np.sqrt(var[rows] * var[cols])
    k = len(theta)
    J = np.zeros((q + len(rows) + 1, k + 1))
    for index, (a, b) in enumerate(zip(*np.tril_indices(q))):
        unit = np.zeros((q, q))
        unit[a, b] = 1.0
        dpsi = unit @ lam.T + lam @ unit.T
        dvar = np.diag(dpsi)
        J[:q, index] = 0.5 * dvar / var
        dcor = dpsi[rows, cols] / np.sqrt(var[rows] * var[cols]) - 0.5 * cor * (dvar[rows] / var[rows]
                                                                              + dvar[cols] / var[cols])
        J[q:q + len(rows), index] = dcor / (1 - cor**2)
    J[:q, k] = 0.5            # log sd_j = s/2 + log(Psi_jj)/2
    J[-1, k] = 0.5            # log sigma = s/2
    return J


def omega_covariance(theta: np.ndarray, cp: deviance.CrossProducts, reml: bool) -> np.ndarray:
    """Cov of (theta, log sigma^2): twice the inverse Hessian of the unprofiled deviance, from the profiled one
    (module docstring). LinAlgError when the profiled Hessian is not positive definite."""
    theta = np.asarray(theta, dtype=float)
    h_inv = np.linalg.inv(np.linalg.cholesky(deviance.hessian(theta, cp, reml, STEP))).T
    h_inv = h_inv @ h_inv.T
    steps = np.eye(len(theta)) * STEP
    log_sigma2 = lambda at: np.log(deviance.solve(at, cp, reml).sigma2)  # noqa: E731
    g = np.array([(log_sigma2(theta + e) - log_sigma2(theta - e)) / (2 * STEP) for e in steps])
    dof = cp.n - cp.ztx.shape[2] if reml else cp.n
    cov = np.empty((len(theta) + 1, len(theta) + 1))
    cov[:-1, :-1] = 2 * h_inv
    cov[:-1, -1] = cov[-1, :-1] = 2 * h_inv @ g
    cov[-1, -1] = 2 / dof + 2 * g @ h_inv @ g
    return cov


def wald_record(theta: np.ndarray, sigma2: float, cp: deviance.CrossProducts, reml: bool, terms: list[str],
                singular: bool) -> dict:
    """The fit record's ``variance_parameters``: names, scales, phi and its covariance (None, and ``problem`` saying
    why, on the boundary or where the information is not positive definite)."""
    names = parameter_names(terms)
    estimate = transformed(theta, sigma2)
    problem = None
    if singular:
        problem = ("singular fit: a variance at zero or a correlation at +-1 has no Wald interval on the log/atanh "
                   "scale")
    else:
        try:
            cov = jacobian(theta) @ omega_covariance(theta, cp, reml) @ jacobian(theta).T
        except np.linalg.LinAlgError:
            problem = "the deviance's Hessian in theta is not positive definite at the optimum"
    return {"terms": names, "scales": scales(terms), "estimate": estimate.tolist(),
            "vcov": None if problem else cov.tolist(), "problem": problem}
