rule fit:
    input:
        data=f"{OUT}/imputations/imp_{{k}}.parquet",
    output:
        fit=f"{OUT}/fits/imp_{{k}}.json",
    log:
        f"{OUT}/logs/fit/{{k}}.log",
    benchmark:
        f"{OUT}/benchmarks/fit/{{k}}.tsv"
    params:
        formula=config["model"]["formula"],
        reml=config["model"]["reml"],
        listwise=False,
    conda:
        "../envs/mlmi.yaml"
    script:
        "../scripts/fit.py"


rule fit_listwise:
    input:
        data=f"{OUT}/data/missing.parquet",
    output:
        fit=f"{OUT}/fits/listwise.json",
    log:
        f"{OUT}/logs/fit_listwise.log",
    benchmark:
        f"{OUT}/benchmarks/fit_listwise.tsv"
    params:
        formula=config["model"]["formula"],
        reml=config["model"]["reml"],
        listwise=True,
    conda:
        "../envs/mlmi.yaml"
    script:
        "../scripts/fit.py"
