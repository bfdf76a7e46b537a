rule report:
    input:
        **get_pooled_tables(),
        missing=f"{OUT}/data/missing.parquet",
        truth=get_truth(),
        fits=get_fits(),
        listwise_fit=f"{OUT}/fits/listwise.json",
        imputed=get_imputations(),
        chains=get_chains(),
        models=get_imputation_models(),
        checks=get_checks(),
        logs=get_unrecorded_logs(),  # what the data, imputation and pool jobs' libraries warned of
        traces=get_traces(),
        run_inputs=get_run_inputs(),
    output:
        html=report(f"{OUT}/report.html", caption="../report/report.rst", category="Report"),
        **{name: report(path, caption=f"../report/{name}.rst", category="Figures", subcategory=FIGURES[name])
           for name, path in figure_paths(OUT).items()},
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    params:
        scenario=config["scenario"],
        formula=config["model"]["formula"],
        categorical=get_categorical,
        config=get_run_config,
        m=M,
        benchmarks=get_run_benchmarks(),
    # Its figures are drawn two at a time (mlmi.report.figures.render_all); more gains little, as the largest figure
    # is half of the drawing. With --cores 1 Snakemake gives it one.
    threads: 2
    conda:
        CONDA_ENV
    script:
        "../scripts/report.py"
