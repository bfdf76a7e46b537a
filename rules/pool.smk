rule pool:
    input:
        fits=get_fits,
        listwise=f"{RUN}/fits/listwise.json",
    output:
        **get_pooled_tables("{run}"),
    log:
        f"{RUN}/logs/pool.log",
    benchmark:
        f"{RUN}/benchmarks/pool.tsv"
    conda:
        "../envs/mlmi.yaml"
    script:
        "../scripts/pool.py"
