rule report:
    input:
        **get_pooled_tables(),
        missing=f"{OUT}/data/missing.parquet",
        truth=get_truth(),
        fits=get_fits(),
        listwise_fit=f"{OUT}/fits/listwise.json",
        imputed=get_imputations(),
        chains=get_chains(),
        models=get_imputation_models(),  # made first, so that its warnings are among those the report lists
        traces=get_traces(),
        run_inputs=get_run_inputs(),
    output:
        html=report(f"{OUT}/report.html", caption="../report/report.rst", category="Report"),
        missingness_patterns=report(f"{OUT}/figures/missingness_patterns.png",
                                    caption="../report/missingness_patterns.rst", category="Figures",
                                    subcategory="Data and missingness"),
        imputation_diagnostics=report(f"{OUT}/figures/imputation_diagnostics.png",
                                      caption="../report/imputation_diagnostics.rst", category="Figures",
                                      subcategory="Imputation diagnostics"),
        forest=report(f"{OUT}/figures/forest.png", caption="../report/forest.rst", category="Figures",
                      subcategory="Fixed effects"),
        random_effects=report(f"{OUT}/figures/random_effects.png", caption="../report/random_effects.rst",
                              category="Figures", subcategory="Random effects"),
        caterpillar=report(f"{OUT}/figures/caterpillar.png", caption="../report/caterpillar.rst",
                           category="Figures", subcategory="Random effects"),
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    params:
        scenario=config["scenario"],
        formula=config["model"]["formula"],
        categorical=config["imputation"]["categorical"],
        config=config,
        m=M,
        logs=get_run_logs(),
        benchmarks=get_run_benchmarks(),
    threads: 1
    resources:
        mem_mb=1024,
        runtime=1,
    conda:
        get_conda_env
    script:
        "../scripts/report.py"
