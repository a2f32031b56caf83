"""profiles/slurm as shipped: a dry run of the papers' configs puts every job that uses a GPU in the
GPU partition with --gpus=1 and every other job in the CPU partition without one; downloads run on
the login node; profiles/default (loaded in every run) cannot override a cluster profile."""

import os
import re
import subprocess
import sys

import pytest
import yaml
from test_workflow import ROOT

pytestmark = pytest.mark.workflow
ENCODERS = {"encode", "iesg_encode", "pixie_encode"}
DOWNLOADS = {"fetch_shard", "benchmark_download", "corpus_download_0", "encoder_download"}
# Local inputs the papers' configs name (downloaded by hand): empty stand-ins suffice for a dry run.
LOCAL_INPUTS = ["data/Train_GCC-training.tsv", "data/Concreteness_ratings_Brysbaert_et_al_BRM.txt"]


def dry_run(workdir, *args):
    for f in LOCAL_INPUTS:
        (workdir / f).parent.mkdir(parents=True, exist_ok=True)
        (workdir / f).touch()
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--profile", str(ROOT / "profiles/slurm"),
           "--cores", "64",  # a dry run caps threads at the cores: show the rules' own
           *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r.stdout + r.stderr


def jobs(text):
    """(kind, rule, threads, resources) of every job a dry run lists."""
    out = []
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:\n)", text):  # grouped jobs are indented
        m = re.match(r"[ \t]*(localrule|rule) (\w+):\n", block)
        if not m:
            continue
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        out.append((m.group(1), m.group(2), int(threads.group(1)) if threads else 1, resources))
    return out


def sbatch_gpu_args(resources):
    """What the SLURM plugin adds to sbatch for these resources (its own function)."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class R(dict):
        __getattr__ = dict.__getitem__

    typed = R((k, int(v) if v.isdigit() else v) for k, v in resources.items())
    return set_gres_string(type("Job", (), {"resources": typed})()).strip()


@pytest.mark.parametrize("configfile, gpu_rules", [
    # (with the embedded default's IESG on OpenMoji images: their own encoder run; wield.device: cpu)
    ("configs/wield-cc.yaml", {"encode", "iesg_encode"}),
    ("configs/iesg.yaml", {"encode", "iesg_encode"}),
    ("configs/pixie.yaml", {"encode", "pixie_encode"}),
])
def test_dry_run_puts_exactly_the_gpu_jobs_on_gpus(tmp_path, configfile, gpu_rules):
    listed = jobs(dry_run(tmp_path, "--configfile", str(ROOT / configfile)))
    assert {r for _, r, _, _ in listed} & DOWNLOADS  # run on the login node (see below)
    remote = [j for j in listed if j[1] not in DOWNLOADS | {"all", "pixie_all"}]
    assert {r for _, r, _, _ in remote} & ENCODERS == gpu_rules
    assert {"table2", "subset", "pixie_features"} <= {r for _, r, _, _ in remote}
    assert any(r == "evaluate" or r.startswith("evaluate_") for _, r, _, _ in remote)  # per run | per grid
    assert any(r == "train" or r.startswith("train_") for _, r, _, _ in remote)  # wield.train_jobs point | grid
    for kind, rule, threads, res in remote:
        gpu = rule in gpu_rules
        assert res["slurm_partition"] == ("gpu" if gpu else "cpu"), (rule, res)
        assert sbatch_gpu_args(res) == ("--gpus=1" if gpu else ""), (rule, res)
        assert "cpus_per_task" not in res  # the plugin then asks for --cpus-per-task = threads
        assert res["mem_mb"] != "<TBD>" and int(res["runtime"]) > 0
    if configfile == "configs/wield-cc.yaml":
        train = [t for _, r, t, _ in remote if r == "train"]
        assert train and set(train) == {4}  # wield.threads -> --cpus-per-task=4


def test_without_a_gpu_partition_device_auto_runs_on_cpu_nodes(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    (profile / "config.yaml").write_text(re.sub(r'GPU_PARTITION = "gpu"', 'GPU_PARTITION = ""', text))
    cfg = tmp_path / "auto.yaml"
    cfg.write_text(yaml.safe_dump({"encoder": {"device": "auto"}, "wield": {"device": "auto"}}))
    out = dry_run(tmp_path, "--profile", str(profile), "--configfile", str(cfg))
    listed = jobs(out)
    assert "encode" in {r for _, r, _, _ in listed} and "train_wield" in {r for _, r, _, _ in listed}  # grid jobs
    for _, rule, _, res in listed:
        assert res.get("slurm_partition", "cpu") == "cpu" and sbatch_gpu_args(res) == "", (rule, res)
    assert "encoder.device = auto and profiles/slurm/config.yaml names no GPU partition" in out

    cfg.write_text(yaml.safe_dump({"encoder": {"device": "cuda"}}))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d",
                        str(tmp_path), "--profile", str(profile), "--configfile", str(cfg)],
                       capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert r.returncode != 0
    assert "encoder.device = cuda asks for a GPU" in r.stdout + r.stderr
    assert "set encoder.device: cpu" in r.stdout + r.stderr


def test_exactly_the_downloads_are_local_rules():
    """Local rules run on the login node (the network); a dry run does not tell them apart."""
    local = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n(?=[ \t]*rule\b)", smk.read_text()):
            name = re.match(r"\s*rule\s*(\w*):\n(?:\s*name:\s*f?\"(\w+))?", block)
            if name and re.search(r"^\s*localrule: True$", block, re.M):
                local.add(name.group(1) or name.group(2).rstrip("_"))
    assert local == {"fetch_shard", "benchmark_download", "corpus_download", "encoder_download"}


def test_profiles_name_only_real_rules_and_the_default_profile_is_harmless(tmp_path):
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    for key in ("set-resources", "set-threads"):
        assert not slurm.get(key), f"{key}: the rules declare their resources (names drift)"
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    # loaded on top of every profile, key by key: nothing that would change a cluster run
    assert not set(default) & {"cores", "jobs", "resources", "default-resources", "set-resources",
                               "set-threads", "executor", "local-cores", "max-threads"}, default
