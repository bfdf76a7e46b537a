import sys

from mlmi.fit.record import RecordVersionError
from mlmi.pool.compare import ComparisonError
from mlmi.pool.failed_fits import FailedFitError
from mlmi.pool.hypotheses import HypothesisError
from mlmi.run import stages
from mlmi.run.logs import log_to

try:
    with log_to(snakemake.log[0]):
        stages.pool_fits(snakemake.input.fits, snakemake.input.listwise, dict(snakemake.output.items()),
                         on_failed_fit=snakemake.params.on_failed_fit, tests=snakemake.params.tests,
                         comparisons=snakemake.params.compare, compare_paths=snakemake.input.compare,
                         imputed_paths=snakemake.input.imputations, formula=snakemake.params.formula)
except (FailedFitError, HypothesisError, ComparisonError, RecordVersionError) as error:  # a fit that did not
    # converge, a tested term a fit dropped, a comparison model not nested in the fits, a fit record another mlmi
    # wrote: one line, not a traceback
    sys.exit(f"mlmi: {error}")
