from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.fit(snakemake.input.data, snakemake.output.fit, model=snakemake.params.model,
               listwise=snakemake.params.listwise, label=snakemake.params.label)
