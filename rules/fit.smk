rule fit:
    input:
        data=f"{RUN}/imputations/imp_{{k}}.parquet",
    output:
        fit=f"{RUN}/fits/imp_{{k}}.json",
    log:
        f"{RUN}/logs/fit/{{k}}.log",
    benchmark:
        f"{RUN}/benchmarks/fit/{{k}}.tsv"
    params:
        model=get_param("model"),
        listwise=False,
        label=get_label,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/fit.py"


use rule fit as fit_listwise with:
    input:
        data=f"{RUN}/data/missing.parquet",
    output:
        fit=f"{RUN}/fits/listwise.json",
    log:
        f"{RUN}/logs/fit_listwise.log",
    benchmark:
        f"{RUN}/benchmarks/fit_listwise.tsv"
    params:
        listwise=True,
        label="listwise",


use rule fit as fit_compare with:
    output:
        fit=f"{RUN}/fits/compare/{{comparison}}/imp_{{k}}.json",
    log:
        f"{RUN}/logs/fit_compare/{{comparison}}/{{k}}.log",
    benchmark:
        f"{RUN}/benchmarks/fit_compare/{{comparison}}/{{k}}.tsv"
    params:
        model=get_compare_model,
