# IESG (paper 001): a text corpus and images attached to words -> SGNS pretraining -> the
# image-enhanced skip-gram and the L2 baseline -> image<->word matching and word similarity.

I = config["iesg"]
# With the embedded OpenMoji data on both sides the WIELD encodings are reused (same images).
IESG_SHARES_ENCODINGS = shares_data_encodings(I)
IESG_FEATURES = iesg_features()  # (IESG, the results folder: common.smk)


rule iesg_corpus:
    """The text corpus, tokenized like every caption, and its vocabulary."""
    input:
        [I["corpus"]] if I["corpus_url"] else [],
    output:
        corpus=f"{IESG}/corpus.txt",
        vocab=f"{IESG}/vocab.tsv",
    params:
        source=I["corpus"],
        max_bytes=I["max_bytes"],
        min_count=I["min_count"],
    log:
        "results/logs/iesg/corpus.log",
    conda:
        ENV
    shell:
        "python -m groundwords.text.corpora --source {params.source} --out {output.corpus} "
        "--max-bytes {params.max_bytes} --vocab-out {output.vocab} --min-count {params.min_count} "
        "> {log} 2>&1"


rule iesg_word_images:
    """Images attached to words, split by image into train/validation/test."""
    priority: 60  # see "Job priorities" in the Snakefile
    input:
        f"{DATA}/openmoji/captions.tsv" if I["images"] == "openmoji" else [],
    output:
        pairs=f"{IESG}/word_images.tsv",
        images=f"{IESG}/images.tsv",
    params:
        how=word_images_how(I, IESG_SHARES_ENCODINGS),
        val=I["val_frac"],
        test=I["test_frac"],
        seed=I["seed"],
    log:
        "results/logs/iesg/word_images.log",
    conda:
        ENV
    shell:
        "python -m groundwords.grounding.word_images {params.how} --out {output.pairs} "
        "--images-out {output.images} --val-frac {params.val} --test-frac {params.test} "
        "--seed {params.seed} > {log} 2>&1"


rule iesg_encode:
    """Encodings of the word-attached images (when they are not the WIELD images)."""
    input:
        images=f"{IESG}/images.tsv",
        model=ENCODER_STAMP,
    output:
        f"{IESG}/encodings.h5",
    params:
        cfg=ENCODER_CONFIG,
    log:
        "results/logs/iesg/encode.log",
    benchmark:
        "results/benchmarks/iesg/encode.tsv"
    threads: 2
    resources:
        **ENCODE_GPU,
        mem_mb=8000,
        runtime=720,
    conda:
        ENV
    shell:
        ENCODE_CMD


rule iesg_pretrain:
    """Skip-gram with negative sampling: IESG's initial word embeddings (and its baseline)."""
    input:
        corpus=f"{IESG}/corpus.txt",
        vocab=f"{IESG}/vocab.tsv",
    output:
        vectors=f"{IESG}/sgns/vectors.txt",
        info=f"{IESG}/sgns/train.json",
    params:
        cfg=config_arg(I, only=("sgns", "seed", "device")),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/iesg/pretrain.log",
    benchmark:
        "results/benchmarks/iesg/pretrain.tsv"
    threads: I["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        # the numba engine is CPU-only (iesg.device auto keeps it there; cuda with it is a config error)
        **gpu_resources(I["device"] if I["sgns"]["engine"] == "torch" else "cpu", "iesg.device", "iesg_pretrain"),
    conda:
        ENV
    shell:
        "python -m groundwords.studies.iesg.stage pretrain --corpus {input.corpus} --vocab {input.vocab} "
        "--out-dir $(dirname {output.vectors}) {params.cfg} {params.training} --threads {threads} --no-progress > {log} 2>&1"


rule iesg_train:
    """IESG (alternating margin losses) and the L2-projection baseline."""
    priority: 40  # see "Job priorities" in the Snakefile
    input:
        sgns=f"{IESG}/sgns/vectors.txt",
        corpus=f"{IESG}/corpus.txt",
        pairs=f"{IESG}/word_images.tsv",
        features=IESG_FEATURES,
    output:
        vectors=f"{IESG}/model/vectors.txt",
        info=f"{IESG}/model/train.json",
    params:
        cfg=config_arg(I, only=("model", "seed", "device")),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/iesg/train.log",
    benchmark:
        "results/benchmarks/iesg/train.tsv"
    threads: I["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        **gpu_resources(I["device"], "iesg.device", "iesg_train"),
    conda:
        ENV
    shell:
        "python -m groundwords.studies.iesg.stage train --sgns $(dirname {input.sgns}) --corpus {input.corpus} "
        "--word-images {input.pairs} --features {input.features} "
        "--out-dir $(dirname {output.vectors}) {params.cfg} {params.training} --threads {threads} --no-progress > {log} 2>&1"


rule iesg_matching:
    """Image->word and word->image matching on the test split: P@1/5/10 for L2 and IESG."""
    input:
        model=f"{IESG}/model/train.json",
        pairs=f"{IESG}/word_images.tsv",
        features=IESG_FEATURES,
    output:
        table=f"{IESG}/matching.tsv",
        ranks=f"{IESG}/ranks.tsv",
    params:
        cfg=config_arg(I, only=("candidates", "seed")),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/iesg/matching.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.iesg.stage evaluate --model-dir $(dirname {input.model}) "
        "--word-images {input.pairs} --features {input.features} --out-tsv {output.table} "
        "{params.cfg} --image-pool all "
        "--ranks-tsv {output.ranks} > {log} 2>&1"


rule iesg_wordsim:
    """Word similarity of the skip-gram and IESG embeddings (Table 3)."""
    input:
        unpack(lambda wc: benchmark_files(names=I["benchmarks"])),
        vectors=f"{IESG}/{{model}}/vectors.txt",
    output:
        table=f"{IESG}/{{model}}/eval.tsv",
        pairs=f"{IESG}/{{model}}/pairs.tsv",
    params:
        benchmarks=benchmark_args(names=I["benchmarks"]),
    wildcard_constraints:
        model="sgns|model",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/iesg/{model}.eval.log",
    conda:
        ENV
    shell:
        "python -m groundwords.evaluation.similarity --vectors {input.vectors} {params.benchmarks} "
        "--out {output.table} --pairs-out {output.pairs} > {log} 2>&1"


rule iesg_tables:
    """IESG Tables 1-3 (image->word, word->image, word similarity; 95% CIs, paired Δ vs the
    baselines) and Figure 3 (P@1 per term-frequency bin)."""
    input:
        matching=f"{IESG}/matching.tsv",
        ranks=f"{IESG}/ranks.tsv",
        vocab=f"{IESG}/vocab.tsv",
        sgns=f"{IESG}/sgns/eval.tsv",
        iesg=f"{IESG}/model/eval.tsv",
        sgns_pairs=f"{IESG}/sgns/pairs.tsv",
        iesg_pairs=f"{IESG}/model/pairs.tsv",
    output:
        t1=report("results/iesg_table1.csv", caption="../report/iesg.rst", category="IESG"),
        t1md="results/iesg_table1.md",
        t2=report("results/iesg_table2.csv", caption="../report/iesg.rst", category="IESG"),
        t2md="results/iesg_table2.md",
        t3=report("results/iesg_table3.csv", caption="../report/iesg.rst", category="IESG"),
        t3md="results/iesg_table3.md",
        fig=report("results/iesg_figure3.png", caption="../report/iesg.rst", category="IESG"),
        figcsv="results/iesg_figure3.csv",
    params:
        freq_edges=" ".join(f"{e:g}" for e in I["freq_bins"]),
        n_boot=config["stats"]["n_boot"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/iesg/tables.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.iesg.tables --matching {input.matching} --ranks {input.ranks} "
        "--vocab {input.vocab} --sgns-eval {input.sgns} --iesg-eval {input.iesg} "
        "--sgns-pairs {input.sgns_pairs} --iesg-pairs {input.iesg_pairs} --freq-edges {params.freq_edges} "
        "--n-boot {params.n_boot} --out-dir results > {log} 2>&1"


rule iesg_all:
    """Every IESG output (Tables 1-3, Figure 3) and nothing else: snakemake ... iesg_all."""
    input:
        iesg_targets(),
