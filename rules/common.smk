from snakemake.utils import validate

from mlmi.formula import parse_formula


validate(config, schema="../config/schema.yaml")
parse_formula(config["model"]["formula"])

OUT = f"results/{config['scenario']}"
M = config["imputation"]["m"]


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
    return {key: f"{OUT}/pooled/{name}.csv" for key, name in names.items()}


def get_final_outputs():
    """The final outputs of a run: the report and the pooled tables."""
    return [f"{OUT}/report.html", *get_pooled_tables().values()]


def get_truth():
    """The true parameters, for simulated data only."""
    return f"{OUT}/data/truth.json" if config["data"]["source"] == "simulate" else []
