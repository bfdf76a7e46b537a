from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.imputation_models(snakemake.input.missing, snakemake.output.models,
                             imputation=snakemake.params.imputation, formula=snakemake.params.formula)
