import sys

from mlmi.fit.record import RecordVersionError
from mlmi.run import stages
from mlmi.run.logs import log_to

try:
    with log_to(snakemake.log[0]):
        stages.replication(snakemake.output.estimates, pooled_path=snakemake.input.pooled,
                           random_effects_path=snakemake.input.random_effects,
                           variance_components_path=snakemake.input.variance_components,
                           listwise_path=snakemake.input.listwise, complete_path=snakemake.input.complete)
except RecordVersionError as error:  # a fit record another mlmi wrote: one line, not a traceback
    sys.exit(f"mlmi: {error}")
