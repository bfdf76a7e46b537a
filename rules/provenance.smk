rule provenance:
    input:
        inputs=get_run_inputs(),
        outputs=get_run_outputs(),
        benchmarks=get_run_benchmarks("report"),
    output:
        f"{OUT}/provenance.json",
    log:
        f"{OUT}/logs/provenance.log",
    benchmark:
        f"{OUT}/benchmarks/provenance.tsv"
    params:
        config=get_run_config,
        m=M,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/provenance.py"
