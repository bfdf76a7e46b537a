if SIMULATED:

    rule simulate:
        output:
            complete=f"{RUN}/data/complete.parquet",
            truth=f"{RUN}/data/truth.json",
        log:
            f"{RUN}/logs/simulate.log",
        benchmark:
            f"{RUN}/benchmarks/simulate.tsv"
        params:
            settings=get_param("data", "simulate"),
            seed=get_param("seed"),
            seed_prefix=get_data_seed_prefix,
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/simulate.py"

    rule ampute:
        input:
            complete=f"{RUN}/data/complete.parquet",
        output:
            missing=f"{RUN}/data/missing.parquet",
        log:
            f"{RUN}/logs/ampute.log",
        benchmark:
            f"{RUN}/benchmarks/ampute.tsv"
        params:
            missingness=get_param("missingness"),
            group=get_group,
            seed=get_param("seed"),
            seed_prefix=get_data_seed_prefix,
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/ampute.py"

else:

    rule load_data:
        input:
            source=config["data"]["source"],
        output:
            missing=f"{OUT}/data/missing.parquet",
            checks=f"{OUT}/{CHECKS}",
        log:
            f"{OUT}/logs/load_data.log",
        benchmark:
            f"{OUT}/benchmarks/load_data.tsv"
        params:
            na_values=config["data"]["na_values"],
            warnings=get_input_warnings,  # the start-up check's warnings, recorded in checks.json for the report
        threads: 1
        conda:
            CONDA_ENV
        script:
            "../scripts/load_data.py"
