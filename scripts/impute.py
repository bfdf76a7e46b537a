from mlmi import stages
from mlmi.logs import log_to

with log_to(snakemake.log[0]):
    stages.impute(snakemake.input.missing, snakemake.output.imputed, snakemake.output.chains,
                  k=int(snakemake.wildcards.k),
                  seed=snakemake.params.seed, iterations=snakemake.params.iterations,
                  exclude=snakemake.params.exclude, categorical=snakemake.params.categorical,
                  threads=snakemake.threads, seed_prefix=snakemake.params.seed_prefix)
