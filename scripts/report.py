from mlmi import stages
from mlmi.logs import log_to

with log_to(snakemake.log[0]):
    stages.report(snakemake.output[0], fixed_effects_path=snakemake.input.fixed_effects,
                  missing_path=snakemake.input.missing, truth_path=snakemake.input.get("truth") or None,
                  scenario=snakemake.params.scenario, formula=snakemake.params.formula)
