from mlmi import stages
from mlmi.logs import log_to

with log_to(snakemake.log[0]):
    stages.replication(snakemake.output.estimates, pooled_path=snakemake.input.pooled,
                       random_effects_path=snakemake.input.random_effects,
                       variance_components_path=snakemake.input.variance_components,
                       listwise_path=snakemake.input.listwise, complete_path=snakemake.input.complete)
