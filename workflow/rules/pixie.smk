# PIXIE (paper 002): a text corpus and images attached to words -> per-word visual features ->
# SGNS, PIXIE and the baselines (CNN, VAE, concatenations, V-SGNS, IV-SGNS), with and without a
# hidden subset of visual words (*) -> word similarity (Tables 2-5) and retrieval (Table 6).
import shlex

P = config["pixie"]
PX = "results/pixie"
# The IESG word-image table (and its encodings) is reused when both studies attach the same images
# (common.smk decides; this file reads none of iesg.smk's names).
PIXIE_SHARES_IMAGES = pixie_shares_iesg_images()
if PIXIE_SHARES_IMAGES:
    PIXIE_WORD_IMAGES, PIXIE_ENCODINGS = f"{IESG}/word_images.tsv", iesg_features()
else:
    PIXIE_WORD_IMAGES = f"{PX}/word_images.tsv"
    PIXIE_ENCODINGS = f"{DATA}/encodings.h5" if shares_data_encodings(P) else f"{PX}/encodings.h5"
R = P["retrieval"]
# Table 6 on the pipeline's own captions: its validation/test images stay out of the word features.
PIXIE_SPLIT = [f"{PX}/retrieval/split.tsv"] if R["enabled"] and not R["precomp"] else []

wildcard_constraints:
    scale="minmax|none",
    part="all|hidden",
    hidden="|-hidden",
    mapping="linear|nonlinear",
    run="|".join(pixie_names.RETRIEVAL),


rule pixie_corpus:
    """PIXIE's text corpus (paper: text8), tokenized, and its vocabulary (paper: 50k words)."""
    priority: 60  # see "Job priorities" in the Snakefile
    input:
        [P["corpus"]] if P["corpus_url"] else [],
    output:
        corpus=f"{PX}/corpus.txt",
        vocab=f"{PX}/vocab.tsv",
    params:
        source=P["corpus"],
        max_bytes=P["max_bytes"],
        min_count=P["min_count"],
        max_vocab=P["max_vocab"],
    log:
        "results/logs/pixie/corpus.log",
    conda:
        ENV
    shell:
        "python -m groundwords.text.corpora --source {params.source} --out {output.corpus} "
        "--max-bytes {params.max_bytes} --vocab-out {output.vocab} --min-count {params.min_count} "
        "--max-vocab {params.max_vocab} > {log} 2>&1"


if not PIXIE_SHARES_IMAGES:

    rule pixie_word_images:
        """Images attached to words (PIXIE's own table: its images differ from IESG's)."""
        input:
            f"{DATA}/openmoji/captions.tsv" if P["images"] == "openmoji" else [],
        output:
            pairs=f"{PX}/word_images.tsv",
            images=f"{PX}/images.tsv",
        params:
            how=word_images_how(P, shares_data_encodings(P)),
            seed=P["seed"],
            hide=P["hide"],  # checked here already, before the images are encoded
        log:
            "results/logs/pixie/word_images.log",
        conda:
            ENV
        shell:
            "python -m groundwords.grounding.word_images {params.how} --out {output.pairs} "
            "--images-out {output.images} --seed {params.seed} --hide {params.hide} > {log} 2>&1"

    if not shares_data_encodings(P):

        rule pixie_encode:
            """Encodings of PIXIE's word-attached images."""
            input:
                images=f"{PX}/images.tsv",
                model=ENCODER_STAMP,
            output:
                f"{PX}/encodings.h5",
            params:
                cfg=ENCODER_CONFIG,
            log:
                "results/logs/pixie/encode.log",
            benchmark:
                "results/benchmarks/pixie/encode.tsv"
            threads: 2
            resources:
                **ENCODE_GPU,
                mem_mb=8000,
                runtime=720,
            conda:
                ENV
            shell:
                ENCODE_CMD


rule pixie_features:
    """Per-word visual features: the mean encoding of each vocabulary word's images, scaled to
    [0, 1] (minmax: PIXIE and the VAE) or raw (none: CNN, V-SGNS, IV-SGNS); 'hidden' withholds a
    seeded subset of visual words (Table 3), the same words for both scalings."""
    priority: 60  # see "Job priorities" in the Snakefile
    input:
        pairs=PIXIE_WORD_IMAGES,
        features=PIXIE_ENCODINGS,
        vocab=f"{PX}/vocab.tsv",
        split=PIXIE_SPLIT,
    output:
        features=f"{PX}/visual/{{scale}}-{{part}}.h5",
        hidden=f"{PX}/visual/{{scale}}-{{part}}.hidden.txt",
    params:
        hide=lambda wc: P["hide"] if wc.part == "hidden" else 0,
        exclude=lambda wc, input: f"--exclude-split {input.split}" if input.split else "",
        cfg=config_arg(P, only=("seed",)),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "pixie_prep"
    log:
        "results/logs/pixie/features-{scale}-{part}.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.stage features --word-images {input.pairs} --features {input.features} "
        "--vocab {input.vocab} --out {output.features} --scale {wildcards.scale} --hide {params.hide} "
        "--hidden-out {output.hidden} {params.exclude} {params.cfg} > {log} 2>&1"


# The skip-gram settings shared by SGNS, PIXIE and V-SGNS: pixie.text (and pixie.seed) whole.
TEXT_ARGS = "--corpus {input.corpus} --vocab {input.vocab} --out-dir $(dirname {output.vectors}) {params.cfg} " \
    "--threads {threads} --no-progress"
VSGNS_MODEL_A = P["vsgns"]["model"] == "A"
# the PIXIE study's training rules (SGNS, PIXIE, V-SGNS, IV-SGNS, VAE, retrieval) run on pixie.device
PIXIE_GPU = gpu_resources(P["device"], "pixie.device", "the PIXIE training rules")


rule pixie_sgns:
    """SGNS: PIXIE without visual features, trained exactly as PIXIE is (Adam, same pairs and seed)."""
    priority: 45  # see "Job priorities" in the Snakefile
    input:
        corpus=f"{PX}/corpus.txt",
        vocab=f"{PX}/vocab.tsv",
    output:
        vectors=f"{PX}/models/sgns/vectors.txt",
        npy=f"{PX}/models/sgns/vectors.npy",  # what the tables read (the text is for people)
        words=f"{PX}/models/sgns/vocab.txt",
        info=f"{PX}/models/sgns/train.json",
    params:
        cfg=pixie_cfg("text", "device"),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/pixie/sgns.log",
    benchmark:
        "results/benchmarks/pixie/sgns.tsv"
    threads: P["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        **PIXIE_GPU,
    conda:
        ENV
    shell:
        f"python -m groundwords.studies.pixie.stage train {TEXT_ARGS} {{params.training}} > {{log}} 2>&1"


rule pixie_model:
    """PIXIE: SGNS + a VAE over the [0, 1]-scaled visual features; PIXIE+ and PIXIE⊕ vectors."""
    priority: 50  # see "Job priorities" in the Snakefile
    input:
        corpus=f"{PX}/corpus.txt",
        vocab=f"{PX}/vocab.tsv",
        visual=lambda wc: f"{PX}/visual/minmax-{'hidden' if wc.hidden else 'all'}.h5",
    output:
        vectors=f"{PX}/models/pixie{{hidden}}/vectors.txt",
        npy=f"{PX}/models/pixie{{hidden}}/vectors.npy",  # what the tables read (the text is for people)
        words=f"{PX}/models/pixie{{hidden}}/vocab.txt",
        concat=f"{PX}/models/pixie{{hidden}}/concat_vectors.txt",
        info=f"{PX}/models/pixie{{hidden}}/train.json",
    params:
        cfg=pixie_cfg("text", "model", "device"),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/pixie/pixie{hidden}.log",
    benchmark:
        "results/benchmarks/pixie/pixie{hidden}.tsv"
    threads: P["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        **PIXIE_GPU,
    conda:
        ENV
    shell:
        f"python -m groundwords.studies.pixie.stage train {TEXT_ARGS} --visual {{input.visual}} {{params.training}} "
        "> {log} 2>&1"


rule pixie_vsgns_features:
    """V-SGNS model A compares e_w with v_w: the raw per-word features reduced by PCA to the text dimension."""
    priority: 45  # see "Job priorities" in the Snakefile
    input:
        f"{PX}/visual/none-{{part}}.h5",
    output:
        f"{PX}/visual/none-{{part}}-reduced.h5",
    params:
        cfg=pixie_cfg(text=("dim",)),
    log:
        "results/logs/pixie/vsgns_features-{part}.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.baselines reduce --visual {input} --out {output} {params.cfg} > {log} 2>&1"


rule pixie_vsgns:
    """V-SGNS (Lazaridou et al. 2015): SGNS + a max-margin term pulling word embeddings towards the visual
    features (model A: directly, on PCA-reduced features; model B: through a learned map)."""
    priority: 40  # see "Job priorities" in the Snakefile
    input:
        corpus=f"{PX}/corpus.txt",
        vocab=f"{PX}/vocab.tsv",
        visual=lambda wc: f"{PX}/visual/none-{'hidden' if wc.hidden else 'all'}"
        + ("-reduced" if VSGNS_MODEL_A else "") + ".h5",
    output:
        vectors=f"{PX}/models/vsgns{{hidden}}/vectors.txt",
        npy=f"{PX}/models/vsgns{{hidden}}/vectors.npy",  # what the tables read (the text is for people)
        words=f"{PX}/models/vsgns{{hidden}}/vocab.txt",
        info=f"{PX}/models/vsgns{{hidden}}/train.json",
    params:
        cfg=pixie_cfg("text", "vsgns", "device"),  # vsgns.model A: --visual-map identity, B: linear
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/pixie/vsgns{hidden}.log",
    benchmark:
        "results/benchmarks/pixie/vsgns{hidden}.tsv"
    threads: P["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        **PIXIE_GPU,
    conda:
        ENV
    shell:
        f"python -m groundwords.studies.pixie.baselines vsgns {TEXT_ARGS} --visual {{input.visual}} {{params.training}} "
        "> {log} 2>&1"


rule pixie_ivsgns:
    """IV-SGNS (Collell et al. 2017): a map from SGNS embeddings to visual features imagines every word's."""
    priority: 40  # see "Job priorities" in the Snakefile
    input:
        sgns=f"{PX}/models/sgns/vectors.txt",
        visual=lambda wc: f"{PX}/visual/none-{'hidden' if wc.hidden else 'all'}.h5",
    output:
        vectors=f"{PX}/models/ivsgns-{{mapping}}{{hidden}}/vectors.txt",
        npy=f"{PX}/models/ivsgns-{{mapping}}{{hidden}}/vectors.npy",  # what the tables read (the text is for people)
        words=f"{PX}/models/ivsgns-{{mapping}}{{hidden}}/vocab.txt",
        info=f"{PX}/models/ivsgns-{{mapping}}{{hidden}}/train.json",
    params:
        cfg=pixie_cfg("ivsgns", "device"),
        training=cli_args(config["training"]),  # --checkpoint-seconds (the nonlinear map)
    log:
        "results/logs/pixie/ivsgns-{mapping}{hidden}.log",
    threads: P["threads"]
    resources:
        **PIXIE_GPU,  # the linear map is a least-squares solve on the CPU: it holds the GPU briefly
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.baselines ivsgns --sgns {input.sgns} --visual {input.visual} "
        "--out-dir $(dirname {output.vectors}) --mapping {wildcards.mapping} {params.cfg} --threads {threads} "
        "{params.training} > {log} 2>&1"


rule pixie_vae:
    """VAE: PIXIE's visual component trained alone; μ(x_w) for the visual words."""
    priority: 40  # see "Job priorities" in the Snakefile
    input:
        f"{PX}/visual/minmax-all.h5",
    output:
        vectors=f"{PX}/models/vae/vectors.txt",
        npy=f"{PX}/models/vae/vectors.npy",  # what the tables read (the text is for people)
        words=f"{PX}/models/vae/vocab.txt",
        info=f"{PX}/models/vae/train.json",
    params:
        cfg=pixie_cfg("vae", "device", text=("dim", "lr"), model=("hidden", "J")),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/pixie/vae.log",
    threads: P["threads"]
    resources:
        **PIXIE_GPU,
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.baselines vae --visual {input} --out-dir $(dirname {output.vectors}) "
        "{params.cfg} --threads {threads} {params.training} > {log} 2>&1"


rule pixie_cnn:
    """CNN: the raw per-word visual features as word vectors."""
    priority: 30  # see "Job priorities" in the Snakefile
    input:
        f"{PX}/visual/none-all.h5",
    output:
        f"{PX}/models/cnn/vectors.txt",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/pixie/cnn.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.baselines cnn --visual {input} --out {output} > {log} 2>&1"


rule pixie_concat:
    """CNN⊕SGNS (Kiela & Bottou 2014) and VAE⊕SGNS: L2-normalised parts, concatenated."""
    priority: 30  # see "Job priorities" in the Snakefile
    input:
        sgns=f"{PX}/models/sgns/vectors.txt",
        visual=f"{PX}/models/{{visual}}/vectors.txt",
    output:
        f"{PX}/models/{{visual}}-sgns/vectors.txt",
    wildcard_constraints:
        visual="cnn|vae",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/pixie/{visual}-sgns.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.baselines concat --a {input.sgns} --b {input.visual} --out {output} "
        "> {log} 2>&1"


rule pixie_wordsim:
    """Spearman ρ of every representation on every benchmark: all pairs, visual-word pairs, hidden-word pairs;
    95% bootstrap CIs and the paired Δ vs SGNS."""
    input:
        unpack(lambda wc: benchmark_files(names=P["benchmarks"])),
        reps=list(pixie_reps().values()),
        visual=f"{PX}/visual/none-all.h5",
        hidden=[f"{PX}/visual/minmax-hidden.hidden.txt"] if P["hide"] else [],
    output:
        f"{PX}/wordsim.tsv",
    params:
        reps=" ".join(shlex.quote(f"--rep={n}={p}") for n, p in pixie_reps().items()),
        visual_only=" ".join(shlex.quote(f"--visual-only={n}") for n in pixie_names.VISUAL_ONLY),
        benchmarks=benchmark_args(names=P["benchmarks"]),
        hidden=lambda wc, input: f"--hidden-words {input.hidden}" if input.hidden else "",
        n_boot=config["stats"]["n_boot"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/pixie/wordsim.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.tables wordsim {params.reps} {params.visual_only} {params.benchmarks} "
        "--visual-words {input.visual} {params.hidden} --n-boot {params.n_boot} --out {output} > {log} 2>&1"


rule pixie_tables:
    """PIXIE Tables 2-5: word similarity, visual propagation, pair cosines, nearest neighbours."""
    input:
        wordsim=f"{PX}/wordsim.tsv",
        visual=f"{PX}/visual/none-all.h5",
        hidden=[f"{PX}/visual/minmax-hidden.hidden.txt"] if P["hide"] else [],
        reps=[p for n, p in pixie_reps().items() if n in pixie_names.TABLE45],
        concreteness=[P["concreteness"]] if P["concreteness"] else [],
    output:
        t2=report("results/pixie_table2.csv", caption="../report/pixie.rst", category="PIXIE"),
        t2md="results/pixie_table2.md",
        t3=report("results/pixie_table3.csv", caption="../report/pixie.rst", category="PIXIE"),
        t3md="results/pixie_table3.md",
        t4=report("results/pixie_table4.csv", caption="../report/pixie.rst", category="PIXIE"),
        t4md="results/pixie_table4.md",
        t5=report("results/pixie_table5.csv", caption="../report/pixie.rst", category="PIXIE"),
        t5md="results/pixie_table5.md",
    params:
        vectors=" ".join(shlex.quote(f"--vectors={n}={p}") for n, p in pixie_reps().items() if n in pixie_names.TABLE45),
        pairs=" ".join(shlex.quote(f"--pair={a},{b}") for a, b in P["pairs"]),
        queries=" ".join(shlex.quote(f"--query={q}") for q in P["queries"]),
        k=P["neighbours"],
        hidden=lambda wc, input: f"--hidden-words {input.hidden}" if input.hidden else "",
        concreteness=lambda wc, input: f"--concreteness {input.concreteness}" if input.concreteness else "",
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/pixie/tables.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.tables tables --wordsim {input.wordsim} {params.vectors} "
        "--visual-words {input.visual} {params.hidden} {params.pairs} {params.queries} --k {params.k} "
        "{params.concreteness} --out-dir results > {log} 2>&1"


rule pixie_retrieval_split:
    """The retrieval images' train/val/test split (seeded, by image), shared by the features and Table 6."""
    priority: 60  # see "Job priorities" in the Snakefile
    input:
        manifest=f"{DATA}/manifest.tsv",
        features=f"{DATA}/encodings.h5",
    output:
        f"{PX}/retrieval/split.tsv",
    params:
        val=R["val_frac"],
        test=R["test_frac"],
        seed=P["seed"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "pixie_prep"
    log:
        "results/logs/pixie/retrieval_split.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.retrieval split --manifest {input.manifest} --features {input.features} "
        "--val-frac {params.val} --test-frac {params.test} --split-seed {params.seed} --out {output} > {log} 2>&1"


rule pixie_retrieval:
    """Image<->sentence retrieval with frozen word vectors (GRU sentence encoder, triplet loss)."""
    priority: 30  # see "Job priorities" in the Snakefile
    input:
        vectors=lambda wc: pixie_reps()[pixie_names.RETRIEVAL[wc.run]],
        data=[] if R["precomp"] else [f"{DATA}/manifest.tsv", f"{DATA}/encodings.h5"],
    output:
        table=f"{PX}/retrieval/{{run}}/retrieval.tsv",
        ranks=f"{PX}/retrieval/{{run}}/ranks.tsv",
        info=f"{PX}/retrieval/{{run}}/train.json",
    params:
        data=(f"--precomp {R['precomp']}" if R["precomp"] else
              f"--manifest {DATA}/manifest.tsv --features {DATA}/encodings.h5 --val-frac {R['val_frac']} "
              f"--test-frac {R['test_frac']} --split-seed {P['seed']}"),
        cfg=pixie_cfg("device", retrieval=("hidden", "epochs", "lr", "lr_step", "margin", "batch_size")),
        training=cli_args(config["training"]),  # --checkpoint-seconds
    log:
        "results/logs/pixie/retrieval-{run}.log",
    benchmark:
        "results/benchmarks/pixie/retrieval-{run}.tsv"
    threads: P["threads"]
    resources:
        mem_mb=8000,
        runtime=1440,
        **PIXIE_GPU,
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.retrieval train --vectors {input.vectors} --out-dir $(dirname {output.table}) "
        "{params.data} {params.cfg} --threads {threads} {params.training} --no-progress > {log} 2>&1"


rule pixie_table6:
    """PIXIE Table 6: retrieval R@1/5/10 of each model, 95% CIs and the paired Δ vs SGNS over the test queries."""
    input:
        tables=expand(f"{PX}/retrieval/{{run}}/retrieval.tsv", run=list(pixie_names.RETRIEVAL)),
        ranks=expand(f"{PX}/retrieval/{{run}}/ranks.tsv", run=list(pixie_names.RETRIEVAL)),
    output:
        t6=report("results/pixie_table6.csv", caption="../report/pixie.rst", category="PIXIE"),
        t6md="results/pixie_table6.md",
    params:
        runs=" ".join(shlex.quote(f"--run={name}={PX}/retrieval/{r}/retrieval.tsv")
                      for r, name in pixie_names.RETRIEVAL.items()),
        n_boot=config["stats"]["n_boot"],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "summaries"
    log:
        "results/logs/pixie/table6.log",
    conda:
        ENV
    shell:
        "python -m groundwords.studies.pixie.tables retrieval {params.runs} --n-boot {params.n_boot} --out-dir results "
        "> {log} 2>&1"


rule pixie_all:
    """Every PIXIE output (Tables 2-6) and nothing else: snakemake ... pixie_all."""
    input:
        pixie_targets(),
