import sys

from mlmi.fit.record import RecordVersionError
from mlmi.run import stages
from mlmi.run.logs import log_to
from mlmi.run.provenance import describe_run

try:
    with log_to(snakemake.log[0]):
        figures = {name: path for name, path in snakemake.output.items() if name != "html"}
        stages.report(snakemake.output.html, figure_paths=figures, fixed_effects_path=snakemake.input.fixed_effects,
                      missing_path=snakemake.input.missing, truth_path=snakemake.input.get("truth") or None,
                      fit_paths=snakemake.input.fits, listwise_fit_path=snakemake.input.listwise_fit,
                      imputed_paths=snakemake.input.imputed, chain_paths=snakemake.input.chains,
                      log_paths=snakemake.input.logs, scenario=snakemake.params.scenario,
                      formula=snakemake.params.formula, categorical=snakemake.params.categorical,
                      models_path=next(iter(snakemake.input.models), None), trace_paths=snakemake.input.traces,
                      checks_path=next(iter(snakemake.input.checks), None), threads=snakemake.threads,
                      provenance=describe_run(snakemake.params.config, snakemake.params.m, snakemake.input.run_inputs,
                                              snakemake.params.benchmarks))
except RecordVersionError as error:  # a fit record another mlmi wrote: one line, not a traceback
    sys.exit(f"mlmi: {error}")
