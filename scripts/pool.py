import sys

from mlmi import stages
from mlmi.logs import log_to
from mlmi.failed_fits import FailedFitError

try:
    with log_to(snakemake.log[0]):
        stages.pool_fits(snakemake.input.fits, snakemake.input.listwise, dict(snakemake.output.items()),
                         on_failed_fit=snakemake.params.on_failed_fit)
except FailedFitError as error:  # a fit that did not converge: one line, not a traceback
    sys.exit(f"mlmi: {error}")
