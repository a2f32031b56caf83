# Shared set-up: config validation (defaults filled in, errors name the key) and path helpers.
import ast
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError

# Jobs run the repository's own code (also inside a --sdm conda env, which holds only the
# dependencies): src/ goes first on PYTHONPATH. `python` is the one on PATH: the activated venv,
# or the conda env's.
SRC = os.path.join(workflow.basedir, "src")
shell.prefix(f"export PYTHONPATH='{SRC}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")
sys.path.insert(0, SRC)

from groundwords.config import cli_args, config_arg, gamma_label, validate_config  # noqa: E402
from groundwords.studies.pixie import names as pixie_names  # noqa: E402
from groundwords.studies.wield import variants as wield_variants  # noqa: E402
from groundwords.cli import UserError  # noqa: E402
from groundwords.config import LAYOUT_KEYS  # noqa: E402

try:
    validate_config(config)
except UserError as e:
    raise WorkflowError(str(e)) from None

ENV = "../../envs/groundwords.yaml"
# The image encoder's settings (encoder.* whole) and command, shared by every rule that encodes images.
ENCODER_CONFIG = config_arg(config["encoder"])
DATA = "results/data"
# A Hugging Face Hub model is fetched once by rule encoder_download (on a cluster's login node, where
# the network is); the encoders then read it from the cache offline.
# (Not the packaged EfficientNet-Lite0, not a local folder.)
ENCODER_STAMP = []
if config["encoder"]["model"] != "efficientnet-lite0" and not os.path.isdir(config["encoder"]["model"]):
    ENCODER_STAMP = [f"{DATA}/encoder/{re.sub(r'[^A-Za-z0-9_.-]+', '_', config['encoder']['model'])}.json"]
ENCODE_CMD = (
    ("HF_HUB_OFFLINE=1 " if ENCODER_STAMP else "")
    + "python -m groundwords.data.encode --images {input.images} --out {output} {params.cfg} > {log} 2>&1"
)
SUBSETS = {s["name"]: s["rows"] for s in config["data"]["subsets"]}
SEEDS = [str(s) for s in config["wield"]["seeds"]]

W = config["wield"]
# Every trained model: results/<subset>/<variant>/<param>-<value>/seed-<s>/ (the variants:
# groundwords.studies.wield.variants)

wildcard_constraints:
    subset="|".join(map(re.escape, SUBSETS)),
    variant="|".join(map(re.escape, wield_variants.variants(W))),
    param="gamma|lambda",
    value=r"[0-9.e+-]+",
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


# --- Where jobs run ------------------------------------------------------------------------------
# The small jobs are grouped (group: prep, subsets, summaries, pixie_prep): on a cluster one SLURM
# job runs the connected jobs of a group. Each takes one `group_slots`; profiles/slurm allows two
# (resources: group_slots=2), so a group job runs at most two side by side and asks SLURM for two
# jobs' CPUs and memory (not the whole group's), for the sum of its layers' short runtimes.
#
# Locally, `gpu` counts GPUs (snakemake --resources gpu=1 runs one GPU job at a time). On SLURM,
# profiles/slurm passes its account and partitions as default resources; slurm_gpu_partition is
# read here (it is no sbatch option) so that a rule goes to the GPU partition, with --gpus=1, only
# when its config makes it use a GPU, and to the CPU partition (the default) otherwise.


def profile_default(name):
    """A value of the run's --default-resources as written (a string or an int), or None."""
    res = workflow.resource_settings.default_resources
    if not res or name not in res:
        return None
    r = res[name]
    raw = (r.raw if r.is_evaluable() else r.value) if hasattr(r, "is_evaluable") else r
    if isinstance(raw, str):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    return raw


GPU_PARTITION = profile_default("slurm_gpu_partition")  # None: no SLURM profile; "": no GPUs
GPU_USERS = {}  # rules that will ask SLURM for a GPU -> the config key that makes them


def _partition_gres(partition):
    """The generic resources (e.g. 'gpu:a100:4') of a partition's nodes, per sinfo."""
    import subprocess

    try:
        out = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%G"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # cannot tell: trust the profile
    return out.split()


def gpu_resources(device, key, rules):
    """The resources of rules that use a GPU when ``key`` (e.g. encoder.device) is not cpu."""
    if device == "cpu":
        return {"gpu": 0}
    if GPU_PARTITION is None:  # not on SLURM
        return {"gpu": 1}
    if GPU_PARTITION == "":  # a cluster without GPUs
        if device != "auto":
            raise WorkflowError(
                f"{key} = {device} asks for a GPU, but profiles/slurm/config.yaml names no GPU "
                f"partition (GPU_PARTITION). To run {rules} on CPU nodes: set {key}: cpu (or auto) "
                "in your config file.")
        if workflow.is_main_process:
            print(f"{key} = auto and profiles/slurm/config.yaml names no GPU partition: {rules} run on "
                  "CPU nodes.", file=sys.stderr)
        return {"gpu": 0}
    GPU_USERS[rules] = key
    return {"gpu": 1, "slurm_partition": GPU_PARTITION}


def cluster_checks():
    """Before the first sbatch of a SLURM run: an explicit account (the plugin cannot guess it), and
    GPUs in the GPU partition when rules will ask for one (else sbatch fails with a gres error)."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    if not workflow.executor_settings.no_account and not profile_default("slurm_account"):
        raise WorkflowError(
            "No SLURM account: set ACCOUNT at the top of profiles/slurm/config.yaml (yours: "
            "`sacctmgr -n show assoc user=$USER format=account`), or pass --slurm-no-account on "
            "a cluster without accounts.")
    gres = _partition_gres(GPU_PARTITION) if GPU_USERS else None
    if gres is not None and not any("gpu" in g for g in gres):
        keys = sorted(set(GPU_USERS.values()))
        raise WorkflowError(
            f"{' and '.join(keys)} {'asks' if len(keys) == 1 else 'ask'} for a GPU, but SLURM partition "
            f"{GPU_PARTITION!r} has no GPUs (sinfo %G: {' '.join(gres) or 'none'}). "
            f"To run {' and '.join(GPU_USERS)} on CPU nodes: set "
            f"{' and '.join(f'{k}: cpu' for k in keys)} in your config file "
            "(or GPU_PARTITION = \"\" at the top of profiles/slurm/config.yaml, which makes device auto "
            "mean the CPU).")


# The image encoders' GPU (and, on SLURM, partition) resources, shared by every encode rule.
ENCODE_GPU = gpu_resources(config["encoder"]["device"], "encoder.device", "the image encoders")


onstart:
    cluster_checks()


def benchmark_files(wildcards=None, names=None):
    """name -> file for every configured benchmark: a local path, a packaged copy, or a download."""
    from groundwords.evaluation.sets import BENCHMARKS

    files = {}
    for name in names or config["evaluate"]["benchmarks"]:
        local = config["benchmarks"].get(name, {}).get("path")
        if local:
            files[name] = local
        elif BENCHMARKS[name].packaged_path() is not None:
            files[name] = str(BENCHMARKS[name].packaged_path())
        else:  # downloaded by rule benchmark_download, verified by sha256
            files[name] = f"{DATA}/benchmarks/{BENCHMARKS[name].filename}"
    return files


def benchmark_args(wildcards=None, names=None):
    return " ".join(f"--benchmark {n}={p}" for n, p in benchmark_files(names=names).items())


def benchmark_by_filename(filename):
    from groundwords.evaluation.sets import BENCHMARKS

    return next(n for n, b in BENCHMARKS.items() if b.filename == filename)


def labels(values):
    return [gamma_label(v) for v in values]


def runs(variant, param, values, subsets=None, file="eval.tsv"):
    """Paths of one file of every run of a grid."""
    return expand(
        "results/{subset}/{variant}/{param}-{value}/seed-{seed}/{file}",
        subset=subsets or list(SUBSETS), variant=variant, param=param,
        value=labels(values), seed=SEEDS, file=file,
    )


def table_targets():
    out = ["results/table2.csv", "results/table2.md", "results/table3.csv", "results/table3.md",
           "results/figure2_loss.png", "results/figure3_scatter.png"]
    if W["image_input"]["enabled"]:
        out += ["results/table1.csv", "results/table1.md"]
    if W["window_control"]["enabled"]:
        out += ["results/table4.csv", "results/table4.md"]
    if W["controls"]["word_targets"] or W["controls"]["caption_window"]:
        out += ["results/controls.csv", "results/controls.md"]
    return out


def iesg_targets():
    if not config["iesg"]["enabled"]:
        return []
    return [f"results/iesg_table{i}.{ext}" for i in (1, 2, 3) for ext in ("csv", "md")] + [
        "results/iesg_figure3.png", "results/iesg_figure3.csv"]


def largest_subset():
    return max(SUBSETS, key=lambda s: SUBSETS[s] or float("inf"))


def summary_rule_inputs(evals):
    """eval.tsv files plus the pairs.tsv/train.json the summary reads next to them."""
    return {"evals": evals,
            "pairs": [e.replace("eval.tsv", "pairs.tsv") for e in evals],
            "infos": [e.replace("eval.tsv", "train.json") for e in evals]}


def control_runs():
    grids = wield_variants.grids(W)  # wordtarget: gamma > 0 (its gamma 0 is wield/gamma-0)
    return [e for v in ("wield", "wield-wordtarget", "cbow-caption") if v in grids for e in runs(v, *grids[v])]


def grid_files(variant, param, values, file):
    """Paths of one file of every run of a grid at the job's subset and seed (left as wildcards):
    the inputs and outputs of the one-job-per-grid rules (wield.train_jobs: grid)."""
    return expand(f"results/{{{{subset}}}}/{variant}/{param}-{{value}}/seed-{{{{seed}}}}/{file}", value=labels(values))


def grid_points(variant, param, values, stage="train"):
    """A params function: one quoted ``--point`` per run of a grid, for the one-job-per-grid rules
    (wield.train_jobs: grid): ``stage`` train, the run's out dir and the variant's settings;
    evaluate, the run's vectors and its two tables."""

    def point(wildcards, value):
        out_dir = f"results/{wildcards.subset}/{variant}/{param}-{value}/seed-{wildcards.seed}"
        if stage == "train":
            return shlex.quote(f"--out-dir {out_dir} {wield_variants.train_flags(variant, value, W)}")
        return shlex.quote(f"--vectors {out_dir}/vectors.txt --out {out_dir}/eval.tsv --pairs-out {out_dir}/pairs.tsv")

    def points(wildcards):
        return " ".join(f"--point {point(wildcards, v)}" for v in labels(values))

    return points


# The IESG word-image table and encodings, which PIXIE reuses when both studies attach the same images.
IESG = "results/iesg"


def iesg_features():
    """The encodings of IESG's word-attached images: the caption data's when both are the embedded
    OpenMoji images, else IESG's own."""
    return f"{DATA}/encodings.h5" if shares_data_encodings(config["iesg"]) else f"{IESG}/encodings.h5"


def pixie_shares_iesg_images():
    """PIXIE reuses IESG's word-image table (and its encodings) when both attach the same images."""
    I, P = config["iesg"], config["pixie"]
    return I["enabled"] and all(P[k] == I[k] for k in ("images", "class_names", "wordnet", "wordnet_depth"))


def corpus_downloads():
    """corpus path -> (url, checksum) for every enabled study whose corpus has a URL."""
    out = {}
    for section in ("iesg", "pixie"):
        sec = config.get(section, {})
        if sec.get("enabled") and sec.get("corpus_url"):
            out[sec["corpus"]] = (sec["corpus_url"], sec["corpus_checksum"])
    return out


def shares_data_encodings(sec):
    """With the embedded OpenMoji data on both sides a study reuses the caption data's encodings."""
    return sec["images"] == "openmoji" and config["data"]["source"] == "openmoji"


def word_images_how(sec, shares_encodings):
    """The `python -m groundwords.grounding.word_images` source arguments of a study's config section."""
    if sec["images"] == "openmoji":
        return f"openmoji --images-dir {DATA}/openmoji/images" + (" --manifest-ids" if shares_encodings else "")
    return (f"folder --root {sec['images']}"
            + (f" --class-names {sec['class_names']}" if sec["class_names"] else "")
            + (f" --wordnet --wordnet-depth {sec['wordnet_depth']}" if sec["wordnet"] else ""))


# PIXIE (paper 002): the representations' display names and files: groundwords.studies.pixie.names


def pixie_reps():
    return pixie_names.rep_files(config["pixie"]["hide"])


def pixie_cfg(*parts, **picked):
    """--config of the pixie.* ``parts`` (whole) and of ``picked`` sub-keys (section -> keys), with
    pixie.seed: the settings of one PIXIE stage, and nothing else (no rerun when another changes)."""
    P = config["pixie"]
    values = {k: P[k] for k in (*parts, "seed")}
    values.update({sec: {k: P[sec][k] for k in keys} for sec, keys in picked.items()})
    return config_arg(values)


def pixie_targets():
    P = config["pixie"]
    if not P["enabled"]:
        return []
    out = [f"results/pixie_table{i}.{ext}" for i in (2, 3, 4, 5) for ext in ("csv", "md")]
    if P["retrieval"]["enabled"]:
        out += ["results/pixie_table6.csv", "results/pixie_table6.md"]
    return out


# The claims table (workflow/rules/claims.smk)


def claims_inputs():
    """name -> table CSV for every table of this config that a claim reads."""
    out = {"wield_table2": "results/table2.csv"}
    if W["image_input"]["enabled"]:
        out["wield_table1"] = "results/table1.csv"
    if config["iesg"]["enabled"]:
        out.update({f"iesg_table{i}": f"results/iesg_table{i}.csv" for i in (1, 2, 3)})
    if config["pixie"]["enabled"]:
        out.update({f"pixie_table{i}": f"results/pixie_table{i}.csv" for i in (2, 3)})
        if config["pixie"]["retrieval"]["enabled"]:
            out["pixie_table6"] = "results/pixie_table6.csv"
    return out


def claims_args(wildcards, input):
    args = [f"--{name.replace('_', '-')} {path}" for name, path in input.items()]
    why = {"wield_table1": "wield.image_input.enabled is false", "iesg": "iesg.enabled is false",
           "pixie": "pixie.enabled is false", "pixie_table6": "pixie.retrieval.enabled is false"}
    args += [f"--why '{k}={v}'" for k, v in why.items()]
    return " ".join(args)
