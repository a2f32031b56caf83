"""Configuration: JSON-schema validation with defaults, and errors that name the key.

The schema is ``src/groundwords/schemas/config.schema.yaml`` (also reachable as
``workflow/schemas/config.schema.yaml``). Validation fills in defaults, so the rules can rely on
every documented key being present. ``python -m groundwords.config FILE`` checks a config file
and prints the effective configuration.
"""

from __future__ import annotations

import argparse
import copy
import sys
from importlib import resources

import jsonschema
import yaml

from .io import UserError, run_cli

SCHEMA_NAME = "config.schema.yaml"


def load_schema() -> dict:
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
    from .benchmarks import BENCHMARKS

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
    names = [s["name"] for s in config.get("data", {}).get("subsets", [])]
    if len(set(names)) != len(names):
        raise UserError(f"data.subsets: subset names must be unique, got {names}")
    gammas = config.get("wield", {}).get("gammas", [])
    if len({gamma_label(g) for g in gammas}) != len(gammas):
        raise UserError(f"wield.gammas: values collide once written as labels: {gammas}")


def gamma_label(g) -> str:
    """How a γ value appears in paths and tables: 10.0 -> '10', 0.5 -> '0.5'."""
    return f"{float(g):g}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.config", description="validate a config file")
    p.add_argument("configs", nargs="+", help="config files, later ones override earlier ones")
    a = p.parse_args(argv)
    cfg: dict = {}
    for path in a.configs:
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
