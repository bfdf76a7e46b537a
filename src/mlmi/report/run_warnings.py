"""Every warning of a run, for the report: its records' own (``mlmi.report.results``), then what the jobs whose
warnings no record carries logged (the data, imputation and pool libraries), each message once.
"""
import re
from pathlib import Path

import pandas as pd

from mlmi.pool.failed_fits import left_out_warnings
from mlmi.report.results import fit_warnings

#: Jobs named in a warning that several jobs logged; the others are counted.
JOBS_NAMED = 4


def logged_warnings(logs: dict) -> dict[str, list[str]]:
    """Every distinct WARNING, ERROR or CRITICAL message in job logs (``mlmi.run.logs`` format), in the order first
    logged, with the label of the log of each time it was logged.

    A message that starts with its job's own name (job ``fit/3`` logs ``3: ...``) is kept without it, so the
    same problem in several fits is one message. A listed log that does not exist has nothing to say.
    """
    pattern = re.compile(r"^\S+ \S+ (?:WARNING|ERROR|CRITICAL) \S+: (.*)$")
    found = {}
    for label, path in logs.items():
        if not Path(path).is_file():
            continue
        own = label.rsplit("/", 1)[-1] + ": "
        for match in map(pattern.match, Path(path).read_text(encoding="utf-8", errors="replace").splitlines()):
            if match:
                found.setdefault(match.group(1).removeprefix(own), []).append(label)
    return found


def logged_line(message: str, labels: list[str]) -> str:
    """One logged message as the report lists it: the jobs that logged it, and how often when more than once."""
    jobs = list(dict.fromkeys(labels))
    named = ", ".join(jobs[:JOBS_NAMED]) + (f" and {len(jobs) - JOBS_NAMED} other jobs" if len(jobs) > JOBS_NAMED
                                           else "")
    return f"{named}: {message}" + (f" (×{len(labels)})" if len(labels) > 1 else "")


def gather_warnings(logged: dict[str, list[str]], model_info: pd.DataFrame, fixed: pd.DataFrame,
                    recorded=()) -> list[str]:
    """The results' own warnings (imputations left out of the pool first, fits, pooling), the warnings
    ``recorded`` by the start-up check and the imputation models, then each logged message
    (``logged_warnings``) once, unless it repeats one of them.

    A logged message repeats one when it, or its text after a leading "label: ", is part of a
    result warning (the pool job logs what model_info.csv and the pooled riv also say).
    """
    found = left_out_warnings(model_info) + fit_warnings(model_info, fixed) + list(recorded)
    said = " ".join(found)
    return found + [logged_line(message, labels) for message, labels in logged.items()
                    if message not in said and message.split(": ", 1)[-1] not in said]
