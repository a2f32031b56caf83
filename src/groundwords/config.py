"""Configuration: JSON-schema validation with defaults, and errors that name the key.

The schema is ``src/groundwords/schemas/config.schema.yaml`` (also reachable as
``workflow/schemas/config.schema.yaml``). Validation fills in defaults, so the rules can rely on
every documented key being present. ``python -m groundwords.config FILE...`` checks config
files merged over the embedded default (``config.yaml`` at the repository root), as Snakemake
merges ``--configfile`` over it, and prints the effective configuration.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from groundwords.cli import UserError, run_cli

SCHEMA_NAME = "config.schema.yaml"
#: the embedded default configuration (Snakefile's ``configfile:``), when run from a checkout
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def load_schema() -> dict:
    """The schema (a fresh copy: callers may change it)."""
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("groundwords").joinpath("schemas", SCHEMA_NAME).read_text()
    # libyaml's loader when there is one: every snakemake start (on SLURM, three per job) reads it
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _with_defaults(validator_class):
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _sub_schema(section: str, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> dict:
    """The schema of ``section``: a top-level key (``fetch``) or a dotted path (``pixie.text``)."""
    sub = load_schema()
    for part in section.split("."):
        sub = sub["properties"][part]
    sub = copy.deepcopy(sub)
    keep = [k for k in sub["properties"] if k not in exclude and (only is None or k in only)]
    sub["properties"] = {k: sub["properties"][k] for k in keep}
    sub["required"] = [k for k in sub.get("required", []) if k in keep]
    return sub


def section_settings(section: str, values: dict | None = None, exclude: tuple[str, ...] = (),
                     only: tuple[str, ...] | None = None) -> dict:
    """The keys of one config ``section`` (e.g. ``fetch``, or a dotted ``pixie.text``): ``values`` over the schema's defaults,
    validated against the schema (a :class:`UserError` names ``section.key``). The schema is the
    one place where a default lives: stages' CLIs and functions take theirs from here."""
    sub = _sub_schema(section, exclude, only)
    values = copy.deepcopy(dict(values or {}))
    errors = list(_with_defaults(jsonschema.Draft202012Validator)(sub).iter_errors(values))
    if errors:
        lines = [f"{_key([section, *e.absolute_path])}: {e.message}" for e in errors]
        raise UserError("invalid settings:\n  " + "\n  ".join(lines))
    return _as_numbers(values, sub)


def _as_numbers(values: dict, schema: dict) -> dict:
    """Integers given for ``type: number`` keys as floats (``lam: 5`` -> 5.0), as a ``type=float``
    option would parse them: a stage sees the same value whichever way it arrives."""
    for key, sub in schema.get("properties", {}).items():
        v = values.get(key)
        if sub.get("type") == "number" and isinstance(v, int) and not isinstance(v, bool):
            values[key] = float(v)
        elif sub.get("type") == "object" and isinstance(v, dict):
            _as_numbers(v, sub)
    return values


def add_section_arguments(parser: argparse.ArgumentParser, section: str, exclude: tuple[str, ...] = (),
                          only: tuple[str, ...] | None = None, rename: dict[str, str] | None = None) -> list[str]:
    """One ``--key-name`` option per scalar key of a config section (``rename``: key -> another
    flag name, e.g. where two sections of one stage share a key). No argparse default: an option not
    given is ``None``, and :func:`section_settings` / :func:`stage_settings` fill in the schema's.
    Returns the keys."""
    props = _sub_schema(section, exclude, only)["properties"]
    keys = []
    for key, sub in props.items():
        if sub.get("type") in ("object", "array"):
            continue
        flag = "--" + (rename or {}).get(key, key.replace("_", "-"))
        dest = flag[2:].replace("-", "_")
        default = sub.get("default")
        help_ = f"{sub.get('description', '')} (config key {section}.{key}; default {default!r})".strip()
        help_ = help_.replace("%", "%%")
        if sub.get("type") == "boolean":
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            t = sub.get("type")
            kind = {"integer": int, "number": float}.get(t, str) if isinstance(t, str) else str
            choices = sub.get("enum")
            parser.add_argument(flag, dest=dest, type=kind, default=None, choices=choices, help=help_)
        keys.append(key)
    return keys


def add_config_argument(parser: argparse.ArgumentParser, section: str) -> None:
    """``--config JSON``: the settings of config ``section`` as a rule passes them (see
    :func:`config_arg`); the stage fills in the rest with the schema's defaults
    (:func:`stage_settings`). Any ``--key-name`` option given beside it wins."""
    parser.add_argument("--config", default=None, metavar="JSON",
                        help=f"config {section} settings as a JSON object (missing keys: the schema's defaults)")


def stage_settings(args: argparse.Namespace, section: str, exclude: tuple[str, ...] = (),
                   only: tuple[str, ...] | None = None, rename: dict[str, str] | None = None) -> dict:
    """The settings of a stage: its ``--config`` JSON (:func:`add_config_argument`), then the
    ``--key-name`` options that were given, over the schema's defaults for config ``section``
    (restricted to ``only``/``exclude``; sub-sections, e.g. ``pixie.text``, are filled in whole).
    A sub-section's keys are options too, under their own name or ``rename["text.negatives"]``.
    The schema is the one owner of every default: no argparse default repeats one."""
    values = config_json(args)
    for key, sub in _sub_schema(section, exclude, only)["properties"].items():
        if sub.get("type") == "object" and "properties" in sub:
            for leaf in sub["properties"]:
                v = getattr(args, (rename or {}).get(f"{key}.{leaf}", leaf).replace("-", "_"), None)
                if v is not None:
                    values.setdefault(key, {})[leaf] = v
        else:
            v = getattr(args, (rename or {}).get(key, key).replace("-", "_"), None)
            if v is not None:
                values[key] = v
    return section_settings(section, values, exclude=exclude, only=only)


def config_json(args: argparse.Namespace) -> dict:
    """The ``--config`` JSON object of a stage's arguments (``{}`` without one)."""
    import json

    raw = getattr(args, "config", None)
    try:
        values = json.loads(raw) if raw else {}
    except ValueError as e:
        raise UserError(f"--config: not a JSON object: {e}") from None
    if not isinstance(values, dict):
        raise UserError("--config: not a JSON object")
    return values


def config_arg(values: dict, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> str:
    """``--config '<JSON>'``: ``values`` (a config section, restricted to ``only``/``exclude``) for a
    stage's :func:`add_config_argument`, shell-quoted. In a rule's ``params`` it makes Snakemake
    rerun the stage when any of these settings change."""
    import json
    import shlex

    sel = {k: v for k, v in values.items() if k not in exclude and (only is None or k in only)}
    return "--config " + shlex.quote(json.dumps(sel, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def cli_args(values: dict, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> str:
    """``values`` (one config section) as the command-line options of :func:`add_section_arguments`."""
    import shlex

    out = []
    for key, v in values.items():
        if key in exclude or (only is not None and key not in only):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        else:
            out.append(f"{flag} {shlex.quote(str(v))}")
    return " ".join(out)


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate_config(config: dict) -> dict:
    """Validate ``config`` in place (filling defaults); raise UserError naming every bad key."""
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for e in errors:
            key = _key(e.absolute_path)
            if e.validator == "additionalProperties":
                lines.append(f"{key}: {e.message} (see workflow/schemas/{SCHEMA_NAME})")
            else:
                lines.append(f"{key}: {e.message}")
        raise UserError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_semantics(config)
    return config


def _check_semantics(config: dict) -> None:
    from groundwords.evaluation.sets import BENCHMARKS

    for section in ("evaluate", "iesg", "pixie"):
        for i, name in enumerate(config.get(section, {}).get("benchmarks", [])):
            if name not in BENCHMARKS and name not in config.get("benchmarks", {}):
                raise UserError(
                    f"{section}.benchmarks[{i}]: unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))} "
                    "(or give benchmarks.<name>.path for a local file)"
                )
    downloads: dict[str, tuple[str, str]] = {}
    for section in ("iesg", "pixie"):
        sec = config.get(section, {})
        if not sec.get("corpus_url"):
            continue
        if not sec.get("corpus_checksum"):
            raise UserError(f"{section}.corpus_checksum: required with {section}.corpus_url (downloads are verified)")
        if sec.get("corpus") == "enwiki-sample":
            raise UserError(f"{section}.corpus: give the local path to download {section}.corpus_url to")
        key = (sec["corpus_url"], sec["corpus_checksum"])
        if downloads.setdefault(sec["corpus"], key) != key:
            raise UserError(f"{section}.corpus: {sec['corpus']} is downloaded by both iesg and pixie "
                            "with different corpus_url/corpus_checksum")
    data = config.get("data", {})
    if data.get("source", "openmoji") != "openmoji":

        layout_settings({k: data[k] for k in LAYOUT_KEYS if k in data})
    names = [s["name"] for s in config.get("data", {}).get("subsets", [])]
    if len(set(names)) != len(names):
        raise UserError(f"data.subsets: subset names must be unique, got {names}")
    edges = config.get("iesg", {}).get("freq_bins", [])
    if edges and (len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise UserError(f"iesg.freq_bins: give at least two increasing bin edges (or [] for powers of ten), got {edges}")
    iesg = config.get("iesg", {})
    if iesg.get("device") == "cuda" and iesg.get("sgns", {}).get("engine") == "numba":
        raise UserError("iesg.device: cuda needs iesg.sgns.engine torch (the numba engine pretrains on the CPU "
                        "only; device auto keeps it there)")
    wield = config.get("wield", {})
    if wield.get("engine") == "numba" and (wield.get("objective") != "negative" or wield.get("optimizer") != "sgd"
                                           or wield.get("device") != "cpu"):
        raise UserError("wield.engine: numba needs wield.objective negative, wield.optimizer sgd and wield.device "
                        f"cpu (got {wield.get('objective')}, {wield.get('optimizer')}, {wield.get('device')})")
    gammas = config.get("wield", {}).get("gammas", [])
    if len({gamma_label(g) for g in gammas}) != len(gammas):
        raise UserError(f"wield.gammas: values collide once written as labels: {gammas}")


def gamma_label(g) -> str:
    """How a γ value appears in paths and tables: 10.0 -> '10', 0.5 -> '0.5'."""
    return f"{float(g):g}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.config",
                                description="validate config files merged over the embedded default, as Snakemake does")
    p.add_argument("configs", nargs="+", help="config files, later ones override earlier ones")
    p.add_argument("--default", default=str(DEFAULT_CONFIG),
                   help="the configuration the files override (default: the embedded %(default)s); '' for none")
    a = p.parse_args(argv)
    cfg: dict = {}
    base = [a.default] if a.default else []
    if a.default and not Path(a.default).is_file():
        raise UserError(f"default configuration {a.default} not found: give --default PATH, or --default '' "
                        "to validate the files on their own")
    for path in base + a.configs:
        try:
            with open(path) as f:
                _deep_update(cfg, yaml.safe_load(f) or {})
        except OSError as e:
            raise UserError(f"cannot read config {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML: {e}") from None
    validate_config(cfg)
    yaml.safe_dump(cfg, sys.stdout, sort_keys=False)


def _deep_update(base: dict, new: dict) -> dict:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


if __name__ == "__main__":
    raise SystemExit(run_cli(main))


#: the data.* keys that describe the source's layout (see the schema)
LAYOUT_KEYS = ("format", "header", "caption_col", "url_col")


def layout_settings(layout: dict | None = None) -> dict:
    """The source layout keys (:data:`LAYOUT_KEYS`) over the schema's defaults, validated."""

    out = section_settings("data", {k: v for k, v in (layout or {}).items() if v is not None}, only=LAYOUT_KEYS)
    for key in ("caption_col", "url_col"):
        v = out[key]
        if isinstance(v, str) and v.strip().isdigit():
            out[key] = int(v)
        elif isinstance(v, str) and not out["header"] and out["format"] != "parquet":
            raise UserError(f"data.{key}: a column name ({v!r}) needs data.header: true (or a column number)")
    if out["caption_col"] == out["url_col"]:
        raise UserError(f"data.caption_col and data.url_col name the same column ({out['url_col']!r})")
    return out
