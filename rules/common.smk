import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from mlmi.inputs import InputError, check_inputs, schema_problem

# Check everything the user gave before any job runs; a problem is one line and a stop.
try:
    validate(config, schema="../config/schema.yaml")
    IMPUTED_FILES = check_inputs(config)
except WorkflowError:
    with open(workflow.source_path("../config/schema.yaml")) as schema:
        sys.exit(f"mlmi: {schema_problem(config, yaml.safe_load(schema))}")
except InputError as error:
    sys.exit(f"mlmi: {error}")

OUT = f"results/{config['scenario']}"
SIMULATED = config["data"]["source"] == "simulate"
EXTERNAL = config["imputation"]["method"] == "external"
M = len(IMPUTED_FILES) if EXTERNAL else config["imputation"]["m"]


def get_fits():
    """The m per-imputation fit records, in imputation order."""
    return [f"{OUT}/fits/imp_{k}.json" for k in range(1, M + 1)]


def get_pooled_tables():
    """Every pooled table of design §4, by name."""
    names = {
        "fixed_effects": "fixed_effects",
        "by_imputation": "fixed_effects_by_imputation",
        "listwise": "listwise_fixed_effects",
        "random_effects": "random_effects",
        "varcorr": "varcorr",
        "ranef": "ranef",
        "model_info": "model_info",
    }
    if config.get("pooling", {}).get("mertools_legacy"):
        names["mertools"] = "mertools_fixed_effects"
    return {key: f"{OUT}/pooled/{name}.csv" for key, name in names.items()}


def get_final_outputs():
    """The final outputs of a run: the report, the pooled tables and the provenance record."""
    return [f"{OUT}/report.html", *get_pooled_tables().values(), f"{OUT}/provenance.json"]


def get_truth():
    """The true parameters, for simulated data only."""
    return f"{OUT}/data/truth.json" if SIMULATED else []


def get_imputed_file(wildcards):
    """The k-th external imputed file (natural order: imp2 before imp10)."""
    return IMPUTED_FILES[int(wildcards.k) - 1]


def get_run_inputs():
    """What the user gave: the config files, and the data and imputed files when not simulated."""
    return [*workflow.configfiles, *([] if SIMULATED else [config["data"]["source"]]), *IMPUTED_FILES]


def get_run_outputs():
    """Every result file a run makes, for the checksums of provenance.json."""
    data = ["complete.parquet", "truth.json", "missing.parquet"] if SIMULATED else ["missing.parquet"]
    chains = [] if EXTERNAL else [f"{OUT}/imputations/chains_{k}.csv" for k in range(1, M + 1)]
    return [
        *[f"{OUT}/data/{name}" for name in data],
        *[f"{OUT}/imputations/imp_{k}.parquet" for k in range(1, M + 1)],
        *chains,
        *get_fits(),
        f"{OUT}/fits/listwise.json",
        *get_pooled_tables().values(),
        f"{OUT}/report.html",
    ]
