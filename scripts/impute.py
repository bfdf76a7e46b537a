from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.impute(snakemake.input.missing, snakemake.output.imputed, snakemake.output.chains,
                  snakemake.output.trace, k=int(snakemake.wildcards.k), seed=snakemake.params.seed,
                  method=snakemake.params.method, formula=snakemake.params.formula,
                  settings=snakemake.params.settings, threads=snakemake.threads,
                  seed_prefix=snakemake.params.seed_prefix)
