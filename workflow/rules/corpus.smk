# Text corpora named by a URL (networked machines): downloaded once, verified by their checksum,
# on the login node on a cluster (localrule: compute nodes often have no network).
# IESG and PIXIE may share one file (both papers use text8): one rule per distinct file.


for _i, (_path, (_url, _checksum)) in enumerate(corpus_downloads().items()):

    rule:
        name:
            f"corpus_download_{_i}"
        output:
            _path,
        params:
            url=_url,
            checksum=_checksum,
        localrule: True
        log:
            f"results/logs/corpus_download_{_i}.log",
        conda:
            ENV
        shell:
            "python -m groundwords.text.corpora download --url {params.url} --checksum {params.checksum} "
            "--out {output} > {log} 2>&1"
