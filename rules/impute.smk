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
            warnings=[],  # the start-up check's warnings are recorded once, by load_data
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/load_data.py"

else:

    rule impute:
        input:
            missing=f"{RUN}/data/missing.parquet",
        output:
            imputed=f"{RUN}/imputations/imp_{{k}}.parquet",
            chains=f"{RUN}/imputations/chains_{{k}}.csv",
            trace=f"{RUN}/imputations/trace_{{k}}.csv",  # the multilevel sampler's draws; miceforest: header only
        log:
            f"{RUN}/logs/impute/{{k}}.log",
        benchmark:
            f"{RUN}/benchmarks/impute/{{k}}.tsv"
        params:
            seed=get_param("seed"),
            seed_prefix=get_seed_prefix,
            method=get_param("imputation", "method"),
            formula=get_param("model", "formula"),
            settings=get_imputation_settings,
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/impute.py"

    rule imputation_models:
        input:
            missing=f"{RUN}/data/missing.parquet",
        output:
            models=f"{RUN}/imputations/models.csv",
        log:
            f"{RUN}/logs/imputation_models.log",
        benchmark:
            f"{RUN}/benchmarks/imputation_models.tsv"
        params:
            imputation=get_param("imputation"),
            formula=get_param("model", "formula"),
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/imputation_models.py"
