from mlmi import stages
from mlmi.logs import log_to

with log_to(snakemake.log[0]):
    stages.ampute(snakemake.input.complete, snakemake.output.missing,
                  prob=snakemake.params.prob, seed=snakemake.params.seed)
