rule pool:
    input:
        fits=get_fits,
        listwise=f"{RUN}/fits/listwise.json",
        compare=get_compare_fits,
        imputations=get_d3_imputations,
    output:
        **get_pooled_tables("{run}"),
    log:
        f"{RUN}/logs/pool.log",
    benchmark:
        f"{RUN}/benchmarks/pool.tsv"
    params:
        on_failed_fit=get_param("pooling", "on_failed_fit"),
        tests=get_param("pooling", "tests"),
        compare=get_param("pooling", "compare"),
        formula=get_param("model", "formula"),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/pool.py"
