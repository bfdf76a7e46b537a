use rule fit as fit_complete with:
    input:
        data=f"{RUN}/data/complete.parquet",
    output:
        fit=f"{RUN}/fits/complete.json",
    log:
        f"{RUN}/logs/fit_complete.log",
    benchmark:
        f"{RUN}/benchmarks/fit_complete.tsv"
    params:
        label="complete",


rule replication:
    input:  # what the stage reads of the run (mlmi.report.results.RunResults), declared
        pooled=f"{RUN}/pooled/fixed_effects.csv",
        random_effects=f"{RUN}/pooled/random_effects.csv",
        variance_components=f"{RUN}/pooled/variance_components.csv",
        listwise=f"{RUN}/fits/listwise.json",
        complete=f"{RUN}/fits/complete.json",
    output:
        estimates=f"{RUN}/estimates.csv",
    log:
        f"{RUN}/logs/replication.log",
    benchmark:
        f"{RUN}/benchmarks/replication.tsv"
    params:
        run_dir=get_run_dir,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/replication.py"


if STUDY:

    rule study_summary:
        input:
            estimates=[f"results/{run}/estimates.csv" for run in get_study_runs()],
            truths=get_study_truths(),
        output:
            summary=f"{OUT}/summary.csv",
            html=report(f"{OUT}/study.html", caption="../report/study.rst", category="Study"),
        log:
            f"{OUT}/logs/study_summary.log",
        benchmark:
            f"{OUT}/benchmarks/study_summary.tsv"
        params:
            runs=get_study_runs(),
            scenarios=list(STUDY),
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/study_summary.py"
