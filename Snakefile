# mlmi: multilevel models on multiply imputed data (design §1)
#
#   simulate ──> ampute ──> impute k=1..m ──> fit k=1..m ──┐
#                    └──────────────────────> fit listwise ─┴─> pool ──> report ──> provenance

import atexit
import os

from snakemake.utils import min_version

min_version("9.0")


# The default config sits beside this file, so the workflow runs from any working directory
# (-s path/to/Snakefile -d WORKDIR); --configfile is merged over it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    k=r"\d+",
    comparison=NAME,  # a folder under fits/compare/, as the schema's pattern for pooling.compare names
    run=rf"{NAME}(/{NAME}/rep_\d+)?",  # never '.' or '..': outputs stay inside results/


include: "rules/data.smk"
include: "rules/impute.smk"
include: "rules/fit.smk"
include: "rules/pool.smk"
include: "rules/report.smk"
include: "rules/provenance.smk"
include: "rules/study.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True


# A run ends with where to look, after Snakemake's own last lines ("Complete log", "Elapsed time"), which follow
# this handler: hence at exit. Jobs (on a cluster too) run with --no-hooks; the guard is for any other process.
onsuccess:
    if workflow.is_main_process:
        atexit.register(say_where_to_look, os.path.abspath(OUT))
