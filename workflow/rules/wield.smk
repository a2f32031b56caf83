# WIELD (paper 000): vocabulary, PCA targets, the gamma grid, word-similarity evaluation, Table 2.


rule vocab:
    input:
        "results/{subset}/captions.tsv",
    output:
        "results/{subset}/vocab.tsv",
    params:
        min_count=config["vocab"]["min_count"],
        max_size=config["vocab"]["max_size"],
        # the vocabulary is built from the captions that train (alive images, unless configured)
        dead="--include-dead" if config["wield"]["train_dead_images"] else "",
    log:
        "results/logs/{subset}/vocab.log",
    conda:
        ENV
    shell:
        "python -m groundwords.vocab --captions {input} --out {output} "
        "--min-count {params.min_count} --max-size {params.max_size} {params.dead} > {log} 2>&1"


rule pca:
    """PCA of the raw encodings, fitted on the subset's training images (paper: 32 dims)."""
    input:
        features=f"{DATA}/encodings.h5",
        captions="results/{subset}/captions.tsv",
    output:
        model="results/{subset}/pca.npz",
        features="results/{subset}/encodings_pca.h5",
    params:
        dim=config["pca"]["dim"],
        seed=config["data"]["seed"],
    log:
        "results/logs/{subset}/pca.log",
    conda:
        ENV
    shell:
        "python -m groundwords.pca --features {input.features} --ids {input.captions} "
        "--dim {params.dim} --out-model {output.model} --out {output.features} "
        "--seed {params.seed} > {log} 2>&1"


rule word_images:
    """Each word's averaged raw image encoding (for the 'with averaged image encodings' column)."""
    input:
        captions="results/{subset}/captions.tsv",
        features=f"{DATA}/encodings.h5",
        vocab="results/{subset}/vocab.tsv",
    output:
        "results/{subset}/word_images.h5",
    log:
        "results/logs/{subset}/word_images.log",
    conda:
        ENV
    shell:
        "python -m groundwords.wordfeatures --captions {input.captions} "
        "--features {input.features} --vocab {input.vocab} --out {output} > {log} 2>&1"


rule train_wield:
    """One grid point: CBOW + image-regression head, loss 1/(1+g) CE + g/(1+g) MSE."""
    input:
        captions="results/{subset}/captions.tsv",
        vocab="results/{subset}/vocab.tsv",
        images="results/{subset}/encodings_pca.h5",
    output:
        vectors="results/{subset}/wield/gamma-{gamma}/seed-{seed}/vectors.txt",
        npy="results/{subset}/wield/gamma-{gamma}/seed-{seed}/vectors.npy",
        loss="results/{subset}/wield/gamma-{gamma}/seed-{seed}/loss.csv",
        info="results/{subset}/wield/gamma-{gamma}/seed-{seed}/train.json",
    params:
        gamma=lambda wc: GAMMAS[wc.gamma],
        dim=config["wield"]["dim"],
        window=config["wield"]["window"],
        epochs=config["wield"]["epochs"],
        batch_size=config["wield"]["batch_size"],
        lr=config["wield"]["lr"],
        objective=config["wield"]["objective"],
        negatives=config["wield"]["negatives"],
        dead="--train-dead-images" if config["wield"]["train_dead_images"] else "",
        device=config["wield"]["device"],
    log:
        "results/logs/{subset}/wield/gamma-{gamma}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/{subset}/wield/gamma-{gamma}/seed-{seed}.tsv"
    threads: config["wield"]["threads"]
    resources:
        mem_mb=4000,
        runtime=1440,
        gpu=gpu_jobs(config["wield"]["device"]),
    conda:
        ENV
    shell:
        "python -m groundwords.train --captions {input.captions} --vocab {input.vocab} "
        "--images {input.images} --out-dir $(dirname {output.vectors}) --gamma {params.gamma} "
        "--seed {wildcards.seed} --dim {params.dim} --window {params.window} "
        "--epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr} "
        "--objective {params.objective} --negatives {params.negatives} {params.dead} "
        "--threads {threads} --device {params.device} > {log} 2>&1"


rule evaluate_wield:
    """Spearman rho of cosine similarities vs human scores, learned and learned+image vectors."""
    input:
        unpack(benchmark_files),
        vectors="results/{subset}/wield/gamma-{gamma}/seed-{seed}/vectors.txt",
        word_images="results/{subset}/word_images.h5",
    output:
        "results/{subset}/wield/gamma-{gamma}/seed-{seed}/eval.tsv",
    params:
        benchmarks=benchmark_args(),
    log:
        "results/logs/{subset}/wield/gamma-{gamma}/seed-{seed}.eval.log",
    conda:
        ENV
    shell:
        "python -m groundwords.evaluate --vectors {input.vectors} "
        "--word-images {input.word_images} {params.benchmarks} --out {output} > {log} 2>&1"


rule table2:
    """The paper's Table 2: dataset size x gamma -> rho (learned, with averaged image encodings)."""
    input:
        evals=expand(
            "results/{subset}/wield/gamma-{gamma}/seed-{seed}/eval.tsv",
            subset=SUBSETS, gamma=GAMMAS, seed=SEEDS,
        ),
        infos=expand(
            "results/{subset}/wield/gamma-{gamma}/seed-{seed}/train.json",
            subset=SUBSETS, gamma=GAMMAS, seed=SEEDS,
        ),
    output:
        csv="results/table2.csv",
        md="results/table2.md",
    log:
        "results/logs/table2.log",
    conda:
        ENV
    shell:
        "python -m groundwords.tables table2 --root results --out-csv {output.csv} "
        "--out-md {output.md} {input.evals} > {log} 2>&1"
