# WIELD (paper 000): vocabulary, PCA targets, the gamma grid, word-similarity evaluation, Table 2.
# Variants and their settings: groundwords.studies.wield.variants.


rule vocab:
    input:
        "results/{subset}/captions.tsv",
    output:
        "results/{subset}/vocab.tsv",
    params:
        cfg=config_arg(config["vocab"]),
        # the vocabulary is built from the captions that train (alive images, unless configured)
        dead="--include-dead" if config["wield"]["train_dead_images"] else "",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "subsets"
    log:
        "results/logs/{subset}/vocab.log",
    conda:
        ENV
    shell:
        "python -m groundwords.text.vocab --captions {input} --out {output} "
        "{params.cfg} {params.dead} > {log} 2>&1"


rule pca:
    """PCA of the raw encodings, fitted on the subset's training images (paper: 32 dims)."""
    input:
        features=f"{DATA}/encodings.h5",
        captions="results/{subset}/captions.tsv",
    output:
        model="results/{subset}/pca.npz",
        features="results/{subset}/encodings_pca.h5",
    params:
        cfg=config_arg(config["pca"]),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "subsets"
    log:
        "results/logs/{subset}/pca.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.pca --features {input.features} --ids {input.captions} "
        "--out-model {output.model} --out {output.features} {params.cfg} > {log} 2>&1"


rule pca_words:
    """PCA of the words' averaged image encodings: word-specific targets (§6.2) and word inputs (§5.1)."""
    input:
        "results/{subset}/word_images.h5",
    output:
        model="results/{subset}/word_images_pca.npz",
        features="results/{subset}/word_images_pca.h5",
    params:
        cfg=config_arg(config["pca"]),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "subsets"
    log:
        "results/logs/{subset}/pca_words.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.pca --features {input} --out-model {output.model} "
        "--out {output.features} {params.cfg} > {log} 2>&1"


rule word_images:
    """Each word's averaged raw image encoding (for the 'with averaged image encodings' column)."""
    input:
        captions="results/{subset}/captions.tsv",
        features=f"{DATA}/encodings.h5",
        vocab="results/{subset}/vocab.tsv",
    output:
        "results/{subset}/word_images.h5",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "subsets"
    log:
        "results/logs/{subset}/word_images.log",
    conda:
        ENV
    shell:
        "python -m groundwords.grounding.word_features --captions {input.captions} "
        "--features {input.features} --vocab {input.vocab} --out {output} > {log} 2>&1"


# wield.train_jobs: point (the default): one job per run (grid point and seed), what a cluster or a GPU
# wants; grid (the embedded default): one job per grid and seed trains its points one after another
# in one process, which saves each point the process start (importing torch: seconds on a laptop).
# The outputs are the same files, byte for byte; a grid job that fails or is stopped reruns whole.
# The stage's command around a run's options, and the resources: the same for both forms of train.
TRAIN_CMD = (
    "python -m groundwords.studies.wield.stage --captions {input.captions} --vocab {input.vocab} "
    "--images {input.images} %s --seed {wildcards.seed} {params.cfg} {params.training} "
    "--threads {threads} --no-progress > {log} 2>&1"
)
TRAIN_RESOURCES = dict(mem_mb=4000, runtime=1440, **gpu_resources(W["device"], "wield.device", "train"))


if W["train_jobs"] == "point":

    rule train:
        """One model at one grid point and seed (variants: groundwords.studies.wield.variants)."""
        input:
            captions="results/{subset}/captions.tsv",
            vocab="results/{subset}/vocab.tsv",
            images=lambda wc: wield_variants.train_images(wc.subset, wc.variant),
        output:
            vectors="results/{subset}/{variant}/{param}-{value}/seed-{seed}/vectors.txt",
            npy="results/{subset}/{variant}/{param}-{value}/seed-{seed}/vectors.npy",
            loss="results/{subset}/{variant}/{param}-{value}/seed-{seed}/loss.csv",
            info="results/{subset}/{variant}/{param}-{value}/seed-{seed}/train.json",
        params:
            # the variant's window, gamma, ... (groundwords.studies.wield.variants), then wield.* whole
            flags=lambda wc: wield_variants.train_flags(wc.variant, wc.value, W),
            cfg=config_arg(W, only=wield_variants.STAGE_KEYS, exclude=("threads",)),
            training=cli_args(config["training"]),  # --checkpoint-seconds
        log:
            "results/logs/{subset}/{variant}/{param}-{value}/seed-{seed}.log",
        benchmark:
            "results/benchmarks/{subset}/{variant}/{param}-{value}/seed-{seed}.tsv"
        threads: W["threads"]
        resources:
            **TRAIN_RESOURCES,
        conda:
            ENV
        shell:
            TRAIN_CMD % "--out-dir $(dirname {output.vectors}) {params.flags}"

else:
    for _variant, (_param, _values) in wield_variants.grids(W).items():

        rule:
            """One variant's grid (its gammas or lambdas) at one seed: the runs of rule train, in one process."""
            name:
                f"train_{_variant.replace('-', '_')}"
            input:
                captions="results/{subset}/captions.tsv",
                vocab="results/{subset}/vocab.tsv",
                images=wield_variants.train_images("{subset}", _variant),
            output:
                **{kind: grid_files(_variant, _param, _values, name)
                   for kind, name in (("vectors", "vectors.txt"), ("npy", "vectors.npy"), ("loss", "loss.csv"),
                                      ("info", "train.json"))},
            params:
                points=grid_points(_variant, _param, _values),  # --point '--out-dir ... --gamma ...' per run
                cfg=config_arg(W, only=wield_variants.STAGE_KEYS, exclude=("threads",)),
                training=cli_args(config["training"]),
            log:
                f"results/logs/{{subset}}/{_variant}/grid-seed-{{seed}}.log",
            benchmark:
                f"results/benchmarks/{{subset}}/{_variant}/grid-seed-{{seed}}.tsv"
            threads: W["threads"]
            resources:
                **TRAIN_RESOURCES,
            conda:
                ENV
            shell:
                TRAIN_CMD % "{params.points}"


EVALUATE_CMD = (
    "python -m groundwords.evaluation.similarity --word-images {input.word_images} {params.benchmarks} %s "
    "> {log} 2>&1"
)


if W["train_jobs"] == "point":

    rule evaluate:
        """Spearman rho of cosine similarities vs human scores, learned and learned+image vectors."""
        input:
            unpack(benchmark_files),
            vectors="results/{subset}/{variant}/{param}-{value}/seed-{seed}/vectors.txt",
            word_images="results/{subset}/word_images.h5",
        output:
            table="results/{subset}/{variant}/{param}-{value}/seed-{seed}/eval.tsv",
            pairs="results/{subset}/{variant}/{param}-{value}/seed-{seed}/pairs.tsv",
        params:
            benchmarks=benchmark_args(),
        resources:
            group_slots=1,
            runtime=3,
        group:
            "summaries"
        log:
            "results/logs/{subset}/{variant}/{param}-{value}/seed-{seed}.eval.log",
        conda:
            ENV
        shell:
            EVALUATE_CMD % "--vectors {input.vectors} --out {output.table} --pairs-out {output.pairs}"

else:
    for _variant, (_param, _values) in wield_variants.grids(W).items():

        rule:
            """One grid's runs (as its train job's), evaluated in one process: the files of rule evaluate."""
            name:
                f"evaluate_{_variant.replace('-', '_')}"
            input:
                unpack(benchmark_files),
                vectors=grid_files(_variant, _param, _values, "vectors.txt"),
                word_images="results/{subset}/word_images.h5",
            output:
                table=grid_files(_variant, _param, _values, "eval.tsv"),
                pairs=grid_files(_variant, _param, _values, "pairs.tsv"),
            params:
                benchmarks=benchmark_args(),
                points=grid_points(_variant, _param, _values, stage="evaluate"),  # --point '--vectors ...' per run
            resources:
                group_slots=1,
                runtime=3,
            group:
                "summaries"
            log:
                f"results/logs/{{subset}}/{_variant}/grid-seed-{{seed}}.eval.log",
            conda:
                ENV
            shell:
                EVALUATE_CMD % "{params.points}"


rule table2:
    """WIELD Table 2: dataset size x gamma -> rho (learned; with averaged image encodings)."""
    input:
        **summary_rule_inputs(runs("wield", "gamma", W["gammas"])),
    output:
        csv=report("results/table2.csv", caption="../report/table2.rst", category="WIELD", subcategory="Table 2"),
        md="results/table2.md",
    params:
        n_boot=config["stats"]["n_boot"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/table2.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.tables summary --baseline wield/gamma-0 --n-boot {params.n_boot} "
        "--title 'Table 2 — Spearman ρ of WIELD embeddings (γ = 0 is vanilla CBOW)' "
        "--out-csv {output.csv} --out-md {output.md} {input.evals} > {log} 2>&1"


rule table1:
    """WIELD Table 1 (§5.1): the image encoding as an input, weighted by lambda."""
    input:
        **summary_rule_inputs(
            [e for i in W["image_input"]["inputs"] for e in runs(f"imginput-{i}", "lambda", W["image_input"]["lambdas"])]
        ),
    output:
        csv=report("results/table1.csv", caption="../report/table1.rst", category="WIELD", subcategory="Table 1"),
        md="results/table1.md",
    params:
        n_boot=config["stats"]["n_boot"],
        baseline=f"imginput-{W['image_input']['inputs'][0]}/lambda-0",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/table1.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.tables summary --baseline {params.baseline} --n-boot {params.n_boot} "
        "--title 'Table 1 — image encoding as an input (λ = 0: no image)' "
        "--out-csv {output.csv} --out-md {output.md} {input.evals} > {log} 2>&1"


rule table4:
    """WIELD Table 4 (§6.2): the window-size control."""
    input:
        **summary_rule_inputs(runs(wield_variants.window_variant(W), "gamma", W["window_control"]["gammas"])),
    output:
        csv=report("results/table4.csv", caption="../report/table4.rst", category="WIELD", subcategory="Table 4"),
        md="results/table4.md",
    params:
        n_boot=config["stats"]["n_boot"],
        baseline=f"{wield_variants.window_variant(W)}/gamma-0",
        window=W["window_control"]["window"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/table4.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.tables summary --baseline {params.baseline} --n-boot {params.n_boot} "
        "--title 'Table 4 — WIELD with window {params.window}' "
        "--out-csv {output.csv} --out-md {output.md} {input.evals} > {log} 2>&1"


rule controls:
    """§6.2: does WIELD learn more than caption co-occurrence? Word-specific targets and
    whole-caption CBOW beside Table 2."""
    input:
        **summary_rule_inputs(control_runs()),
    output:
        csv=report("results/controls.csv", caption="../report/controls.rst", category="WIELD", subcategory="Controls"),
        md="results/controls.md",
    params:
        n_boot=config["stats"]["n_boot"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/controls.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.tables summary --baseline wield/gamma-0 --n-boot {params.n_boot} "
        "--title 'Controls (§6.2) — caption image vs word-specific image targets vs whole-caption CBOW' "
        "--out-csv {output.csv} --out-md {output.md} {input.evals} > {log} 2>&1"


rule table3:
    """WIELD Table 3 (§5.3): nearest neighbours at the best gamma and at gamma 0."""
    input:
        table2="results/table2.csv",
        vectors=runs("wield", "gamma", W["gammas"], subsets=[largest_subset()], file="vectors.txt"),
    output:
        csv=report("results/table3.csv", caption="../report/table3.rst", category="WIELD", subcategory="Table 3"),
        md="results/table3.md",
    params:
        queries=" ".join(W["neighbours"]["queries"]),
        k=W["neighbours"]["k"],
        seed=SEEDS[0],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/table3.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.tables neighbours --table2 {input.table2} --root results "
        "--queries {params.queries} --k {params.k} --seed {params.seed} "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule figure2:
    """WIELD Figure 2: CE, MSE and total loss per epoch for each gamma (largest subset, first seed)."""
    input:
        runs("wield", "gamma", W["gammas"], subsets=[largest_subset()], file="loss.csv")[:: len(SEEDS)],
    output:
        report("results/figure2_loss.png", caption="../report/figure2.rst", category="WIELD", subcategory="Figures"),
    params:
        specs=lambda wc, input: " ".join(f"'γ={g}={p}'" for g, p in zip(labels(W["gammas"]), input)),
        subset=largest_subset(),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/figure2.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.figures loss --out {output} "
        "--title 'WIELD training loss (subset {params.subset})' {params.specs} > {log} 2>&1"


rule figure3:
    """WIELD Figure 3: cosine similarity vs human score for the best model."""
    input:
        table2="results/table2.csv",
        pairs=runs("wield", "gamma", W["gammas"], subsets=[largest_subset()], file="pairs.tsv"),
    output:
        report("results/figure3_scatter.png", caption="../report/figure3.rst", category="WIELD", subcategory="Figures"),
    params:
        seed=SEEDS[0],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/figure3.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.wield.figures best-scatter --table2 {input.table2} --root results "
        "--seed {params.seed} --out {output} > {log} 2>&1"


rule wield_all:
    """Every WIELD output (Tables 1-4, controls, Figures 2-3) and nothing else: snakemake ... wield_all."""
    input:
        table_targets(),
