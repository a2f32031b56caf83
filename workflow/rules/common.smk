# Shared set-up: config validation (defaults filled in, errors name the key) and path helpers.
import os
import sys

from snakemake.exceptions import WorkflowError

# Jobs run the repository's own code (also inside a --sdm conda env, which holds only the
# dependencies): src/ goes first on PYTHONPATH. `python` is the one on PATH: the activated venv,
# or the conda env's.
SRC = os.path.join(workflow.basedir, "src")
shell.prefix(f"export PYTHONPATH='{SRC}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")
sys.path.insert(0, SRC)

from groundwords.config import gamma_label, validate_config  # noqa: E402
from groundwords.io import UserError  # noqa: E402

try:
    validate_config(config)
except UserError as e:
    raise WorkflowError(str(e)) from None

ENV = "../../envs/groundwords.yaml"
DATA = "results/data"
SUBSETS = {s["name"]: s["rows"] for s in config["data"]["subsets"]}
GAMMAS = {gamma_label(g): g for g in config["wield"]["gammas"]}
SEEDS = [str(s) for s in config["wield"]["seeds"]]

wildcard_constraints:
    subset="|".join(map(re.escape, SUBSETS)) if SUBSETS else "[^/]+",
    gamma=r"[0-9.e+-]+",
    seed=r"\d+",
    shard=r"\d+",


def source_tsv():
    src = config["data"]["source"]
    return f"{DATA}/openmoji/captions.tsv" if src == "openmoji" else src


def manifest_limit():
    sizes = list(SUBSETS.values())
    return 0 if 0 in sizes else max(sizes)


def shard_files():
    k = config["fetch"]["shards"]
    return [f"{DATA}/fetch/shard-{i}-of-{k}.tsv" for i in range(k)]


def gpu_jobs(device):
    return 0 if device == "cpu" else 1


def benchmark_files(wildcards=None):
    """name -> file for every configured benchmark: a local path, a packaged copy, or a download."""
    from groundwords.benchmarks import BENCHMARKS

    files = {}
    for name in config["evaluate"]["benchmarks"]:
        local = config["benchmarks"].get(name, {}).get("path")
        if local:
            files[name] = local
        elif BENCHMARKS[name].packaged_path() is not None:
            files[name] = str(BENCHMARKS[name].packaged_path())
        else:  # downloaded by rule benchmark_download, verified by sha256
            files[name] = f"{DATA}/benchmarks/{BENCHMARKS[name].filename}"
    return files


def benchmark_args(wildcards=None):
    return " ".join(f"--benchmark {n}={p}" for n, p in benchmark_files().items())


def benchmark_by_filename(filename):
    from groundwords.benchmarks import BENCHMARKS

    return next(n for n, b in BENCHMARKS.items() if b.filename == filename)
