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
        params:
            na_values=config["data"]["na_values"],
            warnings=[],  # the start-up warnings about the data are logged once, by load_data
        threads: 1
        resources:
            mem_mb=1024,
            runtime=1,
        conda:
            get_conda_env
        script:
            "../scripts/load_data.py"

else:

    rule impute:
        input:
            missing=f"{RUN}/data/missing.parquet",
        output:
            imputed=f"{RUN}/imputations/imp_{{k}}.parquet",
            chains=f"{RUN}/imputations/chains_{{k}}.csv",
        log:
            f"{RUN}/logs/impute/{{k}}.log",
        benchmark:
            f"{RUN}/benchmarks/impute/{{k}}.tsv"
        params:
            seed=config["seed"],
            seed_prefix=get_seed_prefix,
            iterations=get_param("imputation", "iterations"),
            exclude=get_param("imputation", "exclude"),
            categorical=get_param("imputation", "categorical"),
        threads: 1
        resources:
            mem_mb=1024,
            runtime=1,
        conda:
            get_conda_env
        script:
            "../scripts/impute.py"
