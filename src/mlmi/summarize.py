"""merTools-style summaries of m fits, with merTools' defects corrected (design §5.3).

Random-effect parameters are averaged with their spread over imputations (named
``between_sd``, since it is not a standard error); conditional modes are averaged over all
m fits and Rubin-pooled with their conditional variances.
"""
import numpy as np
import pandas as pd

from mlmi.pool import rubin


def has_residual(fit: dict) -> bool:
    """Whether the model has a residual SD: a linear mixed model's; not a binomial or Poisson GLMM's (lme4's VarCorr
    and broom.mixed show none for those)."""
    return fit.get("family", "gaussian") == "gaussian"


def random_effect_parameters(fit: dict) -> list[dict]:
    """One fit's SDs, correlations and residual SD (a linear mixed model's), named as broom.mixed names them."""
    re = fit["random_effects"]
    rows = [{"group": re["group"], "term": f"sd__{name}", "estimate": value} for name, value in re["sd"].items()]
    rows += [{"group": re["group"], "term": f"cor__{pair}", "estimate": value} for pair, value in re["cor"].items()]
    residual = [{"group": "Residual", "term": "sd__Observation", "estimate": fit["sigma"]}] if has_residual(fit) else []
    return rows + residual


def random_effect_stats(fits: list[dict]) -> pd.DataFrame:
    """merTools' ``modelRandEffStats``: mean over imputations and SD over imputations (``between_sd``)."""
    long = pd.DataFrame([row for fit in fits for row in random_effect_parameters(fit)])
    grouped = long.groupby(["group", "term"], sort=False)["estimate"]
    return pd.DataFrame({"estimate": grouped.mean(), "between_sd": grouped.std(ddof=1)}).reset_index()


def varcorr(fits: list[dict]) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr())`` averaged as merTools does: mean SDs, mean correlations.

    vcov is derived from the averaged SDs and correlations (sd^2 and cor * sd_i * sd_j), so
    each row's two columns describe the same averaged matrix.
    """
    stats = random_effect_stats(fits).set_index("term")["estimate"]
    re = fits[0]["random_effects"]
    names = re["terms"]
    rows = [(re["group"], name, None, stats[f"sd__{name}"] ** 2, stats[f"sd__{name}"]) for name in names]
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            cor = stats[f"cor__{first}.{second}"]
            rows.append((re["group"], first, second, cor * stats[f"sd__{first}"] * stats[f"sd__{second}"], cor))
    if has_residual(fits[0]):
        rows.append(("Residual", None, None, stats["sd__Observation"] ** 2, stats["sd__Observation"]))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def pool_ranef(fits: list[dict]) -> pd.DataFrame:
    """Conditional modes averaged over ALL m fits, SEs Rubin-pooled from conditional variances.

    merTools' ``ranef(modList)`` divides the first fit's modes by m; this is the mean of every
    fit's modes, with std_error = sqrt(ubar + (1 + 1/m) b) per level and term.
    """
    first = fits[0]["ranef"]
    if any(fit["ranef"]["levels"] != first["levels"] for fit in fits):
        raise ValueError("the fits have different levels of the grouping factor; cannot pool conditional modes")
    modes = np.array([fit["ranef"]["modes"] for fit in fits])
    variances = np.array([np.diagonal(np.asarray(fit["ranef"]["cond_var"]), axis1=1, axis2=2) for fit in fits])
    m, n_levels, q = modes.shape
    pooled = rubin(pd.DataFrame(modes.reshape(m, -1)), pd.DataFrame(variances.reshape(m, -1)))
    return pd.DataFrame({
        "group": first["group"],
        "level": np.repeat(first["levels"], q),
        "term": np.tile(first["terms"], n_levels),
        "estimate": pooled["qbar"].to_numpy(),
        "std_error": np.sqrt(pooled["t"].to_numpy()),
    })


def model_info(fits: dict[str, dict]) -> pd.DataFrame:
    """One row per fit (imputation label to record): size, criteria, sigma and convergence."""
    return pd.DataFrame([{
        "imputation": label,
        "n_obs": fit["n_obs"],
        "n_levels": fit["n_levels"],
        "n_groups": sum(fit["n_groups"].values()),
        "aic": fit["aic"], "bic": fit["bic"], "loglik": fit["loglik"],
        "reml_criterion": fit["reml_criterion"], "sigma": fit["sigma"],
        "converged": fit["convergence"]["converged"],
        "singular": fit["convergence"]["singular"],
        "warnings": "; ".join(fit["convergence"]["warnings"]),
    } for label, fit in fits.items()])
