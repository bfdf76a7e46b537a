import sys

from mlmi.fit.record import RecordVersionError
from mlmi.report.results import ResultsError
from mlmi.run import stages
from mlmi.run.logs import log_to

try:
    with log_to(snakemake.log[0]):
        stages.replication(snakemake.output.estimates, run_dir=snakemake.params.run_dir)
except (RecordVersionError, ResultsError) as error:  # a fit record another mlmi wrote, a table missing: one line
    sys.exit(f"mlmi: {error}")
