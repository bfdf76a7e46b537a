from mlmi.run.logs import log_to
from mlmi.run.provenance import write_provenance

with log_to(snakemake.log[0]):
    write_provenance(snakemake.output[0], config=snakemake.params.config, m=snakemake.params.m,
                     inputs=snakemake.input.inputs, outputs=snakemake.input.outputs,
                     benchmarks=snakemake.input.benchmarks)
