from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.ampute(snakemake.input.complete, snakemake.output.missing,
                  missingness=snakemake.params.missingness, group=snakemake.params.group,
                  seed=snakemake.params.seed, seed_prefix=snakemake.params.seed_prefix)
