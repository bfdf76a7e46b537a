if SIMULATED:

    rule simulate:
        output:
            complete=f"{OUT}/data/complete.parquet",
            truth=f"{OUT}/data/truth.json",
        log:
            f"{OUT}/logs/simulate.log",
        benchmark:
            f"{OUT}/benchmarks/simulate.tsv"
        params:
            settings=config["data"]["simulate"],
            seed=config["seed"],
        conda:
            "../envs/mlmi.yaml"
        script:
            "../scripts/simulate.py"

    rule ampute:
        input:
            complete=f"{OUT}/data/complete.parquet",
        output:
            missing=f"{OUT}/data/missing.parquet",
        log:
            f"{OUT}/logs/ampute.log",
        benchmark:
            f"{OUT}/benchmarks/ampute.tsv"
        params:
            prob=config["missingness"]["prob"],
            seed=config["seed"],
        conda:
            "../envs/mlmi.yaml"
        script:
            "../scripts/ampute.py"

else:

    rule load_data:
        input:
            source=config["data"]["source"],
        output:
            missing=f"{OUT}/data/missing.parquet",
        log:
            f"{OUT}/logs/load_data.log",
        benchmark:
            f"{OUT}/benchmarks/load_data.tsv"
        conda:
            "../envs/mlmi.yaml"
        script:
            "../scripts/load_data.py"
