"""Config validation: defaults filled in, errors name the offending key."""

from pathlib import Path

import pytest
import yaml

from groundwords.cli import UserError, run_cli
from groundwords.config import gamma_label, validate_config
from groundwords.config import main as config_main

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "configs/wield-cc.yaml", "configs/iesg.yaml"])
def test_shipped_configs_are_valid(name):
    from groundwords.config import _deep_update

    cfg = validate_config(_deep_update(load("config.yaml"), load(name)))  # as snakemake merges them
    assert cfg["wield"]["gammas"][0] == 0
    assert cfg["pca"]["dim"] == 32


def test_defaults_are_filled():
    cfg = validate_config({"data": {"source": "x.tsv", "subsets": [{"name": "all", "rows": 0}]}})
    assert cfg["wield"]["epochs"] == 20 and cfg["wield"]["batch_size"] == 20
    assert cfg["vocab"]["min_count"] == 5 and cfg["fetch"]["retries"] == 3
    assert cfg["data"]["openmoji"]["size"] == 160
    assert cfg["iesg"]["freq_bins"] == [] and cfg["stats"]["equivalence_margin"] == 0.05


@pytest.mark.parametrize("patch, key", [
    ({"wield": {"gammas": [0, "ten"]}}, "wield.gammas[1]"),
    ({"wield": {"gammas": [0, -1]}}, "wield.gammas[1]"),
    ({"pca": {"dim": 0}}, "pca.dim"),
    ({"encoder": {"pooling": "max"}}, "encoder.pooling"),
    ({"fetch": {"worker": 3}}, "fetch"),
    ({"data": {"source": "x", "subsets": [{"name": "a b", "rows": 3}]}}, "data.subsets[0].name"),
    ({"data": {"source": "x", "subsets": [{"name": "a", "rows": 3}, {"name": "a", "rows": 4}]}}, "data.subsets"),
    ({"data": {"source": "x", "subsets": [{"name": "a", "rows": -1}]}}, "data.subsets[0].rows"),
    ({"evaluate": {"benchmarks": ["nosuchbench"]}}, "evaluate.benchmarks[0]"),
    ({"wield": {"gammas": [10, 10.0]}}, "wield.gammas"),
    ({"iesg": {"freq_bins": [10, 1, 100]}}, "iesg.freq_bins"),
    ({"iesg": {"freq_bins": [10]}}, "iesg.freq_bins"),
    ({"iesg": {"freq_bins": [-1, 10]}}, "iesg.freq_bins[0]"),
    ({"stats": {"equivalence_margin": 0}}, "stats.equivalence_margin"),
])
def test_errors_name_the_key(patch, key):
    cfg = {"data": {"source": "x.tsv", "subsets": [{"name": "all", "rows": 0}]}}
    for k, v in patch.items():
        cfg.setdefault(k, {}).update(v)
    with pytest.raises(UserError) as e:
        validate_config(cfg)
    assert key in str(e.value)


def test_cli_reports_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("wield:\n  epochs: -1\n")
    assert run_cli(config_main, [str(ROOT / "config.yaml"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "wield.epochs" in err and "Traceback" not in err


def test_gamma_labels():
    assert [gamma_label(g) for g in (0, 10.0, 0.5, 10000)] == ["0", "10", "0.5", "10000"]


def test_corpus_url_needs_a_checksum():
    cfg = {"data": {"source": "x.tsv", "subsets": [{"name": "all", "rows": 0}]},
           "iesg": {"corpus": "data/text8", "corpus_url": "https://example.org/text8"}}
    with pytest.raises(UserError, match="iesg.corpus_checksum"):
        validate_config(cfg)
    for bad in ("0" * 63, "sha1:" + "0" * 64, "crc32:00000000"):  # not a checksum we verify
        cfg["iesg"]["corpus_checksum"] = bad
        with pytest.raises(UserError, match="iesg.corpus_checksum"):
            validate_config(cfg)
    for good in ("a" * 64, "sha256:" + "a" * 64, "sha1:6c70299b93b7e1f927b42cd8f6ac1a31547c7a2e", "md5:" + "b" * 32):
        cfg["iesg"]["corpus_checksum"] = good
        validate_config(cfg)


def test_cli_validates_an_override_merged_over_the_default(tmp_path, capsys):
    """As Snakemake does with --configfile: a partial override is valid on top of config.yaml."""
    override = tmp_path / "override.yaml"
    override.write_text("fetch: {workers: 8, total_timeout: 30}\n")
    assert run_cli(config_main, [str(override)]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["fetch"]["workers"] == 8 and out["fetch"]["total_timeout"] == 30
    assert out["data"]["source"] == load("config.yaml")["data"]["source"]  # from the default
    assert out["fetch"]["shards"] == load("config.yaml")["fetch"]["shards"]
    # on its own (no default), the override lacks data: the error names the key
    assert run_cli(config_main, ["--default", "", str(override)]) == 2
    assert "'data' is a required property" in capsys.readouterr().err
    assert run_cli(config_main, ["--default", str(tmp_path / "nope.yaml"), str(override)]) == 2
    assert "nope.yaml not found" in capsys.readouterr().err
