from mlmi.run import stages
from mlmi.run.logs import log_to

with log_to(snakemake.log[0]):
    stages.study_summary(snakemake.output.summary, snakemake.output.html, estimate_paths=snakemake.input.estimates,
                         runs=snakemake.params.runs, truth_paths=snakemake.input.truths,
                         scenarios=snakemake.params.scenarios)
