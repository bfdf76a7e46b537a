if EXTERNAL:

    rule load_imputation:
        input:
            imputed=get_imputed_file,
        output:
            imputed=f"{OUT}/imputations/imp_{{k}}.parquet",
        log:
            f"{OUT}/logs/load_imputation/{{k}}.log",
        benchmark:
            f"{OUT}/benchmarks/load_imputation/{{k}}.tsv"
        conda:
            "../envs/mlmi.yaml"
        script:
            "../scripts/load_data.py"

else:

    rule impute:
        input:
            missing=f"{OUT}/data/missing.parquet",
        output:
            imputed=f"{OUT}/imputations/imp_{{k}}.parquet",
            chains=f"{OUT}/imputations/chains_{{k}}.csv",
        log:
            f"{OUT}/logs/impute/{{k}}.log",
        benchmark:
            f"{OUT}/benchmarks/impute/{{k}}.tsv"
        params:
            seed=config["seed"],
            iterations=config["imputation"]["iterations"],
            exclude=config["imputation"]["exclude"],
            categorical=config["imputation"]["categorical"],
        threads: 1
        conda:
            "../envs/mlmi.yaml"
        script:
            "../scripts/impute.py"
