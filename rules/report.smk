rule report:
    input:
        **get_pooled_tables(),
        missing=f"{OUT}/data/missing.parquet",
        truth=get_truth(),
    output:
        report(f"{OUT}/report.html", caption="../report/report.rst", category="Report"),
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    params:
        scenario=config["scenario"],
        formula=config["model"]["formula"],
    conda:
        "../envs/mlmi.yaml"
    script:
        "../scripts/report.py"
