from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.load(snakemake.input[0], snakemake.output[0], snakemake.output.get("checks"),
                na_values=snakemake.params.na_values, warnings=snakemake.params.warnings)
