"""What a fit record (``fits/*.json``, written by ``mlmi.fit.fit_mixed``) says, read without fitting anything.

The fit stage writes records; the pool stage, the report, the console and a study read them. What
they read lives here, so none of them imports ``mlmi.fit`` (and with it statsmodels).
"""
import numpy as np
import pandas as pd
from scipy import special  # what scipy.stats calls, without its 1 s import

#: lme4's default tolerance on max |gradient| of the deviance (``check.conv.grad``).
GRAD_TOL = 2e-3


def failure(convergence: dict) -> str:
    """Why a fit did not converge, in one line: its attempts, the kept optimizer's own message and max|grad|."""
    kept = convergence["attempts"][convergence["kept"] - 1]
    return (f"no attempt of {len(convergence['attempts'])} converged; the best, {convergence['optimizer']}, "
            f"ended with {kept['message']!r} at max|grad| = {convergence['max_abs_gradient']:.3g} "
            f"(tol = {GRAD_TOL})")


def wald_table(fit: dict, conf_level: float = 0.95) -> pd.DataFrame:
    """One fit's fixed effects in broom's columns with Wald (normal) intervals, as lme4's confint."""
    table = pd.DataFrame(fit["fixed_effects"])
    half = special.ndtri(0.5 + conf_level / 2) * table["std_error"]
    return table.assign(p_value=2 * special.ndtr(-np.abs(table["statistic"])),
                        conf_low=table["estimate"] - half, conf_high=table["estimate"] + half)


def per_term(part) -> list[dict]:
    """A record's ``random_effects`` or ``ranef`` as a list with one mapping per random term: a model of one
    term holds the mapping itself (the record shape of one grouping factor), a model of several a list."""
    return part if isinstance(part, list) else [part]
