from mlmi import stages
from mlmi.logs import log_to

with log_to(snakemake.log[0]):
    stages.pool_fits(snakemake.input.fits, snakemake.input.listwise, dict(snakemake.output.items()))
