rule pool:
    input:
        fits=get_fits(),
        listwise=f"{OUT}/fits/listwise.json",
    output:
        **get_pooled_tables(),
    log:
        f"{OUT}/logs/pool.log",
    benchmark:
        f"{OUT}/benchmarks/pool.tsv"
    conda:
        "../envs/mlmi.yaml"
    script:
        "../scripts/pool.py"
