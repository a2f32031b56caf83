# The claims table: every claim of the three papers, judged on this run's tables (95% CIs, MDE).


rule claims:
    """One row per claim of the three papers: the paper's figure, our Δ [95% CI], n, MDE, verdict."""
    input:
        **claims_inputs(),
    output:
        csv=report("results/claims.csv", caption="../report/claims.rst", category="Claims"),
        md="results/claims.md",
    params:
        args=claims_args,
        margin=config["stats"]["equivalence_margin"],
    log:
        "results/logs/claims.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.claims {params.args} --margin {params.margin} "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
