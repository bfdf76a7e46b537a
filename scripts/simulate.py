from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.simulate(snakemake.output.complete, snakemake.output.truth,
                    settings=snakemake.params.settings, seed=snakemake.params.seed,
                    seed_prefix=snakemake.params.seed_prefix)
