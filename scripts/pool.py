import sys

from mlmi import stages
from mlmi.logs import log_to
from mlmi.failed_fits import FailedFitError
from mlmi.pool_tests import HypothesisError

try:
    with log_to(snakemake.log[0]):
        stages.pool_fits(snakemake.input.fits, snakemake.input.listwise, dict(snakemake.output.items()),
                         on_failed_fit=snakemake.params.on_failed_fit, tests=snakemake.params.tests)
except (FailedFitError, HypothesisError) as error:  # a fit that did not converge, a tested term a fit dropped:
    # one line, not a traceback
    sys.exit(f"mlmi: {error}")
