# Data: source rows -> manifest -> sharded fetch -> merged status table -> image encodings.


rule openmoji:
    """Render the embedded offline dataset (OpenMoji images + emoji-name captions)."""
    priority: 100  # see "Job priorities" in the Snakefile
    output:
        f"{DATA}/openmoji/captions.tsv",
    params:
        cfg=config_arg(config["data"]["openmoji"]),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "prep"
    log:
        "results/logs/openmoji.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.datasets openmoji --out-dir $(dirname {output}) "
        "{params.cfg} > {log} 2>&1"


rule manifest:
    """Parse the caption<TAB>url source, select rows, give each a status and a stable id."""
    priority: 100  # see "Job priorities" in the Snakefile
    input:
        source_tsv(),
    output:
        manifest=f"{DATA}/manifest.tsv",
        summary=f"{DATA}/manifest_summary.json",
    params:
        limit=manifest_limit(),
        cfg=config_arg(config["data"], only=("select", "seed")),
        # the source's layout: data.format, header, caption_col, url_col (the embedded source: the default)
        layout="" if config["data"]["source"] == "openmoji" else cli_args(config["data"], only=LAYOUT_KEYS),
    resources:
        group_slots=1,
        runtime=10,
    group:
        "prep"
    log:
        "results/logs/manifest.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.manifest build --source {input} --out {output.manifest} "
        "--summary {output.summary} --limit {params.limit} {params.cfg} {params.layout} > {log} 2>&1"


rule fetch_shard:
    """Download (or read) one shard's images; every id ends with a recorded status. Resumable."""
    priority: 100  # see "Job priorities" in the Snakefile
    input:
        f"{DATA}/manifest.tsv",
    output:
        f"{DATA}/fetch/shard-{{shard}}-of-{{nshards}}.tsv",
    params:
        images=f"{DATA}/images",
        # every fetch.* key but shards, as --key-name value (defaults: the schema)
        settings=cli_args(config["fetch"], exclude=("shards",)),
    localrule: True
    log:
        "results/logs/fetch/shard-{shard}-of-{nshards}.log",
    benchmark:
        "results/benchmarks/fetch/shard-{shard}-of-{nshards}.tsv"
    resources:
        mem_mb=2000,
        runtime=720,
    conda:
        ENV
    shell:
        "python -m groundwords.data.fetch shard --manifest {input} --shard {wildcards.shard} "
        "--num-shards {wildcards.nshards} --out {output} --images-dir {params.images} "
        "{params.settings} > {log} 2>&1"


rule fetch_merge:
    """One status row per manifest row, plus the alive fraction and error counts."""
    priority: 100  # see "Job priorities" in the Snakefile
    input:
        manifest=f"{DATA}/manifest.tsv",
        shards=shard_files(),
    output:
        fetched=f"{DATA}/fetched.tsv",
        summary=f"{DATA}/fetch_summary.json",
    log:
        "results/logs/fetch_merge.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.fetch merge --manifest {input.manifest} --out {output.fetched} "
        "--summary {output.summary} {input.shards} > {log} 2>&1"


if ENCODER_STAMP:

    rule encoder_download:
        """The encoder's weights and image processor from the Hugging Face Hub into its cache."""
        output:
            ENCODER_STAMP[0],
        params:
            model=config["encoder"]["model"],
        localrule: True
        log:
            "results/logs/encoder_download.log",
        conda:
            ENV
        shell:
            "python -m groundwords.data.encode --download-only --model {params.model} --out {output} > {log} 2>&1"


rule encode:
    """Frozen image encoder (transformers id/path, or offline EfficientNet-Lite0) -> HDF5."""
    priority: 100  # see "Job priorities" in the Snakefile
    input:
        images=f"{DATA}/fetched.tsv",
        model=ENCODER_STAMP,
    output:
        f"{DATA}/encodings.h5",
    params:
        cfg=ENCODER_CONFIG,
    log:
        "results/logs/encode.log",
    benchmark:
        "results/benchmarks/encode.tsv"
    threads: 2
    resources:
        **ENCODE_GPU,
        mem_mb=8000,
        runtime=720,
    conda:
        ENV
    shell:
        ENCODE_CMD


rule subset:
    """The captions of one subset (the first N selected rows), with their image status."""
    input:
        f"{DATA}/fetched.tsv",
    output:
        "results/{subset}/captions.tsv",
    params:
        size=lambda wc: SUBSETS[wc.subset],
    resources:
        group_slots=1,
        runtime=10,
    group:
        "subsets"
    log:
        "results/logs/{subset}/subset.log",
    conda:
        ENV
    shell:
        "python -m groundwords.data.manifest subset --fetched {input} --size {params.size} "
        "--out {output} > {log} 2>&1"


rule benchmark_download:
    """A word-similarity benchmark from its canonical URL, verified against its sha256."""
    output:
        f"{DATA}/benchmarks/{{filename}}",
    params:
        name=lambda wc: benchmark_by_filename(wc.filename),
    localrule: True
    log:
        "results/logs/benchmarks/{filename}.log",
    conda:
        ENV
    shell:
        "python -m groundwords.evaluation.sets fetch {params.name} --cache-dir $(dirname {output}) "
        "> {log} 2>&1"
