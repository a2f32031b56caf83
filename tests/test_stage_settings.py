"""One owner for every default: the stages take their settings from the schema (issue #9).

* no stage CLI repeats a schema default as an argparse ``default=`` for one of its config keys;
* a stage called with nothing but its config section (``--config``, as the rule passes it) trains
  with exactly the schema's settings (e.g. ``pixie.text.negatives`` 64, which had drifted to 5);
* the WIELD variants and the PIXIE display names the rules use are the ones the tables use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from groundwords.config import config_arg, load_schema, section_settings

SRC = Path(__file__).resolve().parents[1] / "src" / "groundwords"
#: stage module -> the config sections its CLI takes settings from
STAGES = {
    "studies/pixie/stage.py": ["pixie", "pixie.text", "pixie.model"],
    "studies/pixie/baselines.py": ["pixie", "pixie.text", "pixie.model", "pixie.vae", "pixie.vsgns", "pixie.ivsgns"],
    "studies/pixie/retrieval.py": ["pixie", "pixie.retrieval"],
    "studies/iesg/stage.py": ["iesg", "iesg.sgns", "iesg.model"],
    "studies/wield/stage.py": ["wield"],
    "data/pca.py": ["pca"],
    "data/encode.py": ["encoder"],
    "data/datasets.py": ["data.openmoji"],
    "data/manifest.py": ["data"],
    "data/fetch/cli.py": ["fetch"],
    "text/vocab.py": ["vocab"],
}
#: options that keep their own default on purpose: not that stage's config setting of the same name
OWN = {
    "studies/wield/stage.py": {"seed"},  # the run's seed, one of wield.seeds (a wildcard)
    "studies/iesg/stage.py": {"batch_size"},  # pretrain's batch (iesg.model.batch_size is train's)
    "studies/pixie/stage.py": {"hide"},  # features: 0 for the 'all' part; the rule passes pixie.hide
    "studies/pixie/retrieval.py": {"val_frac", "test_frac"},  # split: the rule passes pixie.retrieval.*
}


def _keys(section: str) -> set[str]:
    sub = load_schema()
    for part in section.split("."):
        sub = sub["properties"][part]
    return {k for k, v in sub["properties"].items() if v.get("type") not in ("object", "array")}


@pytest.mark.parametrize("module", sorted(STAGES))
def test_no_stage_option_repeats_a_schema_default(module):
    text = (SRC / module).read_text()
    keys = set().union(*(_keys(s) for s in STAGES[module]))
    repeated = []
    for m in re.finditer(r'add_argument\(\s*"--([A-Za-z0-9-]+)"([^)]*)\)', text):
        key = m.group(1).replace("-", "_")
        if key in keys and "default=" in m.group(2) and "default=None" not in m.group(2) \
                and key not in OWN.get(module, ()):
            repeated.append(m.group(1))
    assert not repeated, f"{module}: these options repeat a schema default: {repeated}"


def _captured(monkeypatch, module, name):
    calls = []
    monkeypatch.setattr(module, name, lambda *a, **kw: calls.append(kw))
    return calls


def _cfg(values) -> str:
    return json.loads(config_arg(values).split(" ", 1)[1].strip("'"))


def test_pixie_train_with_only_its_section_gets_the_schema_settings(monkeypatch, tmp_path):
    from groundwords.studies.pixie import stage

    calls = _captured(monkeypatch, stage, "train")
    P = section_settings("pixie")
    args = ["train", "--corpus", "c", "--vocab", "v", "--out-dir", str(tmp_path)]
    stage.main(args + ["--config", json.dumps({k: P[k] for k in ("text", "model", "seed")})])
    stage.main(args)  # nothing at all: the schema's defaults too
    assert calls[0] == calls[1]
    kw = calls[0]
    assert kw["negatives"] == 64 == P["text"]["negatives"]  # once 5 in the CLI and the function
    assert {k: kw[k] for k in P["text"]} == P["text"] and {k: kw[k] for k in P["model"]} == P["model"]
    stage.main(args + ["--config", json.dumps({"text": {"negatives": 7}}), "--dim", "9"])
    assert calls[2]["negatives"] == 7 and calls[2]["dim"] == 9 and calls[2]["window"] == P["text"]["window"]


def test_iesg_stages_take_the_schema_names_and_defaults(monkeypatch, tmp_path):
    from groundwords.studies.iesg import stage

    I = section_settings("iesg")
    ev = _captured(monkeypatch, stage, "evaluate")
    stage.main(["evaluate", "--model-dir", "m", "--word-images", "w", "--features", "f", "--out-tsv", "o"])
    assert ev[0]["n_negatives"] == I["candidates"] == 99
    tr = _captured(monkeypatch, stage, "train")
    stage.main(["train", "--sgns", "s", "--corpus", "c", "--word-images", "w", "--features", "f", "--out-dir", "o",
                "--config", json.dumps({"model": I["model"], "seed": I["seed"]})])
    assert {k: tr[0][k] for k in I["model"]} == I["model"]
    pre = _captured(monkeypatch, stage, "pretrain")
    stage.main(["pretrain", "--corpus", "c", "--out-dir", "o"])
    assert {k: pre[0][k] for k in I["sgns"]} == I["sgns"] and pre[0]["min_count"] == I["min_count"]


def test_wield_stage_gets_the_section_and_the_variant(monkeypatch):
    from groundwords.studies.wield import stage, variants

    W = section_settings("wield")
    calls = _captured(monkeypatch, stage, "train")
    flags = variants.train_flags("wield-window10", "10", W).split()
    stage.main(["--captions", "c", "--vocab", "v", "--images", "i", "--out-dir", "o", *flags,
                "--config", json.dumps({k: W[k] for k in variants.STAGE_KEYS})])
    kw = calls[0]
    assert kw["window"] == W["window_control"]["window"] and kw["gamma"] == 10.0
    assert {k: kw[k] for k in variants.STAGE_KEYS if k != "window"} == {
        k: W[k] for k in variants.STAGE_KEYS if k != "window"}


def test_pca_seed_is_its_own_key_with_the_old_value():
    assert section_settings("pca") == {"dim": 32, "seed": 0}
    assert section_settings("data", {"source": "x", "subsets": [{"name": "a", "rows": 0}]})["seed"] == 0


def test_wield_variants():
    from groundwords.studies.wield import variants

    W = section_settings("wield")
    assert variants.variants(W)[1] == "wield-window10"
    assert variants.variant_settings("imginput-word", "0.1", W) == {
        "window": 2, "model": "imginput", "lam": 0.1, "image_input": "word", "gamma": 0,
        "engine": "torch"}  # the numba kernel trains WIELD only
    assert variants.variant_settings("cbow-caption", "0", W)["window"] == variants.CAPTION_WINDOW
    assert variants.variant_settings("wield-wordtarget", "50", W) == {"window": 2, "gamma": 50.0, "image_target": "word"}
    assert variants.train_flags("wield", "10", W) == "--window 2 --gamma 10.0"
    assert variants.train_images("1k", "imginput-word") == "results/1k/word_images_pca.h5"
    assert variants.train_images("1k", "wield") == "results/1k/encodings_pca.h5"
    with pytest.raises(ValueError):
        variants.variant_settings("nope", "1", W)


def test_pixie_names_are_the_tables_names():
    from groundwords.studies.pixie import names, retrieval_table, similarity_tables, wordsim

    assert wordsim.BASELINE == names.BASELINE and retrieval_table.BASELINE == names.BASELINE
    assert similarity_tables.TABLE3_ORDER is names.TABLE3_ORDER
    every = {**names.REPS, **names.HIDDEN_REPS}
    for group in (names.VISUAL_ONLY, names.TABLE45, names.TABLE3_ORDER, list(names.RETRIEVAL.values())):
        assert set(group) <= set(every)
    assert set(names.rep_files(0)) == set(names.REPS)
    assert names.rep_files(5)["PIXIE⊕(∗)"] == "results/pixie/models/pixie-hidden/concat_vectors.txt"


def test_each_rules_file_reads_only_common_smk():
    """No rules file uses a name defined at the top level of another one (but common.smk)."""
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    defined = {}
    for f in rules.glob("*.smk"):
        names = set(re.findall(r"^([A-Z_][A-Z0-9_]+)\s*=", f.read_text(), re.M))  # (P, I, R: read below)
        names |= {f"{n}[" for n in re.findall(r"^([A-Z])\s*=", f.read_text(), re.M)}
        names |= set(re.findall(r"^def ([a-z_0-9]+)\(", f.read_text(), re.M))
        defined[f.name] = names
    for f in rules.glob("*.smk"):
        if f.name == "common.smk":
            continue
        text = f.read_text()
        for other, names in defined.items():
            if other in ("common.smk", f.name):
                continue
            used = sorted(n for n in names - defined[f.name] - defined["common.smk"]
                          if re.search(rf"\b{re.escape(n)}" + (r"\b" if n[-1] != "[" else ""), text))
            assert not used, f"{f.name} uses {other}'s {used}"


def test_stage_functions_have_no_drifted_default():
    """The pixie.text keys are required keywords of the skip-gram stages (their defaults had drifted:
    negatives 5 vs the schema's 64); any keyword default left on a stage function equals the schema's."""
    import inspect

    from groundwords.studies.iesg import stage as iesg_stage
    from groundwords.studies.pixie import baselines, retrieval
    from groundwords.studies.pixie import stage as pixie_stage
    from groundwords.studies.wield import stage as wield_stage
    from groundwords.studies.wield.variants import STAGE_KEYS

    for f in (pixie_stage.train, baselines.train_vsgns):
        params = inspect.signature(f).parameters
        assert all(params[k].default is inspect.Parameter.empty for k in section_settings("pixie.text")), f
    funcs = {
        pixie_stage.train: ["pixie.text", "pixie.model", ("pixie", ("seed", "device"))],
        baselines.train_vsgns: ["pixie.text", ("pixie", ("seed", "device"))],
        baselines.train_ivsgns: ["pixie.ivsgns", ("pixie", ("seed", "device"))],
        baselines.train_vae: ["pixie.vae", ("pixie.model", ("hidden", "J")), ("pixie.text", ("dim", "lr")),
                              ("pixie", ("device",))],
        retrieval.train: [("pixie.retrieval", retrieval.TRAIN_KEYS), ("pixie", ("seed", "device"))],
        iesg_stage.pretrain: ["iesg.sgns", ("iesg", ("min_count", "seed", "device"))],
        iesg_stage.train: ["iesg.model", ("iesg", ("seed", "device"))],
        wield_stage.train: [("wield", tuple(k for k in STAGE_KEYS if k != "threads"))],
    }
    drifted = []
    for f, sections in funcs.items():
        params = inspect.signature(f).parameters
        for sec in sections:
            name, only = (sec, None) if isinstance(sec, str) else sec
            for k, v in section_settings(name, only=only).items():
                d = params[k].default if k in params else inspect.Parameter.empty
                if d is not inspect.Parameter.empty and d != v:
                    drifted.append(f"{f.__module__}.{f.__name__}({k}={d!r}) vs {name}.{k} = {v!r}")
    assert not drifted, drifted
