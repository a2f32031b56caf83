"""The tiny DAG through a real SLURM cluster with profiles/slurm as shipped (only its account and
partitions set, as the README says), checked against SLURM's accounting and against a local run.

Needs a running cluster with partitions `cpu` and `gpu` and an account `groundwords` for this
user, as `.ci/slurm-up` starts (as root) on the machine running the tests; skipped otherwise.
"""

import getpass
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from test_workflow import ROOT, TINY, toy_benchmark

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]
ACCOUNT = "groundwords"
GROUPS = ("prep", "subsets", "summaries", "pixie_prep")  # the rules' job groups


def _run(*cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _cluster_problem():
    """Why the tests cannot use a SLURM cluster here, or None."""
    for tool in ("sbatch", "squeue", "sacct", "sacctmgr", "sinfo"):
        if shutil.which(tool) is None:
            return f"no {tool} (run .ci/slurm-up as root to start a one-node cluster)"
    try:
        if "UP" not in _run("scontrol", "ping").stdout:
            return "slurmctld does not answer (scontrol ping)"
        parts = set(_run("sinfo", "-h", "-o", "%R").stdout.split())
        if not {"cpu", "gpu"} <= parts:
            return f"partitions cpu and gpu wanted, sinfo shows {sorted(parts)}"
        if _run("sacct", "-n", "-X", "-S", "now").returncode != 0:
            return "sacct does not work (no slurmdbd)"
        accounts = _run("sacctmgr", "-n", "-P", "show", "assoc", "format=account").stdout.split()
        if ACCOUNT not in accounts:
            return f"no SLURM account {ACCOUNT!r}"
    except (OSError, subprocess.SubprocessError) as e:
        return f"SLURM does not answer: {e}"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        pytest.skip(f"no SLURM cluster: {problem}")


def shipped_profile(dest, account=ACCOUNT, cpu="cpu", gpu="gpu"):
    """profiles/slurm with the three lines a user edits set (nothing else changed)."""
    shutil.copytree(ROOT / "profiles/slurm", dest)
    text = (dest / "config.yaml").read_text()
    for name, value in (("ACCOUNT", account), ("CPU_PARTITION", cpu), ("GPU_PARTITION", gpu)):
        text, n = re.subn(rf'^(  - {name} = )"[^"]*"', rf'\g<1>"{value}"', text, flags=re.M)
        assert n == 1, name
    (dest / "config.yaml").write_text(text)
    return dest


def snakemake(workdir, *args, timeout=3600):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)


def snakemake_bg(workdir, *args):
    """A snakemake run in the background, its output in workdir/snakemake.out."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)


def tiny_config(workdir, **wield):
    workdir.mkdir(parents=True, exist_ok=True)
    toy_benchmark(workdir / "toy.txt")
    cfg = dict(TINY, benchmarks={"toy": {"path": str(workdir / "toy.txt")}}, wield=dict(TINY["wield"], **wield))
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return workdir / "tiny.yaml"


TIMINGS = {"seconds", "words_per_s", "examples_per_s"}  # loss.csv columns that measure speed


def comparable_outputs(workdir):
    """Every table, vector and text output by path, without what measures time: logs, benchmarks,
    the fetch shards (elapsed_s), train.json, loss.csv's speed columns, HDF5 and PNG metadata."""
    out = {}
    for p in sorted((workdir / "results").rglob("*")):
        rel = p.relative_to(workdir).as_posix()
        if p.is_file() and not rel.startswith(("results/logs/", "results/benchmarks/", "results/data/fetch/")) \
                and p.suffix in {".csv", ".md", ".tsv", ".txt"}:
            out[rel] = p.read_bytes()
            if p.name == "loss.csv":
                rows = [line.split(",") for line in p.read_text().splitlines()]
                keep = [i for i, c in enumerate(rows[0]) if c not in TIMINGS]
                out[rel] = "\n".join(",".join(r[i] for i in keep) for r in rows).encode()
    return out


def test_tiny_dag_through_slurm_matches_a_local_run(cluster, tmp_path):
    t0 = time.time()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0 - 1))
    profile = shipped_profile(tmp_path / "profile")
    work = tmp_path / "slurm"
    cfg = tiny_config(work, train_jobs="point")  # a cluster's choice: one job per WIELD run
    # the local run to compare with, as the README runs it, alongside (it fills SLURM's polling gaps);
    # it trains each WIELD grid in one job (the embedded default), with the same outputs byte for byte
    local = tmp_path / "local"
    local_cfg = tiny_config(local)
    local_run = snakemake_bg(local, "--configfile", str(local_cfg), "--cores", "2", "--resources", "gpu=1")
    r = snakemake(work, "--profile", str(profile), "--configfile", str(cfg),
                  # polling and file-system waits made short for a one-node cluster
                  "--latency-wait", "5", "--seconds-between-status-checks", "1",
                  "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs")
    wall = time.time() - t0
    log = r.stdout + r.stderr
    if r.returncode != 0:
        local_run.kill()
    assert r.returncode == 0, log[-6000:]

    # every job that is not a local rule went through sbatch and ended COMPLETED in SLURM's accounting
    rows = _run("sacct", "-X", "-n", "-P", "-S", since, "-u", getpass.getuser(),
                "--format=JobIDRaw,JobName,Account,Partition,State,Comment,AllocCPUS,WorkDir").stdout.splitlines()
    jobs = [dict(zip(("id", "name", "account", "partition", "state", "comment", "cpus", "workdir"), x.split("|")))
            for x in rows if x.strip()]
    jobs = [j for j in jobs if j["workdir"] == str(work)]
    n_submitted = len(re.findall(r"Job \S+ has been submitted with SLURM jobid", log))
    states = sorted({j["state"] for j in jobs})
    summary = f"{len(jobs)} SLURM jobs ({n_submitted} submitted), states {states}, wall {wall:.0f} s"
    print(summary)
    (tmp_path / "summary.txt").write_text(summary + "\n")
    assert jobs and len(jobs) == n_submitted, summary
    assert states == ["COMPLETED"], summary
    assert {j["account"] for j in jobs} == {ACCOUNT}
    assert {j["partition"] for j in jobs} == {"cpu"}  # the tiny config encodes on the CPU
    by_rule = {}  # rule or group name -> its SLURM jobs (the plugin's comment: rule_<name>[_wildcards_...])
    for j in jobs:
        name = re.sub(r"^rule_|_wildcards_.*$", "", j["comment"])
        name = next((g for g in GROUPS if name.startswith(g + "_")), name)
        by_rule.setdefault(name, []).append(j)
    assert {"encode", "train", "iesg_pretrain", "pixie_model", "summaries"} <= set(by_rule), sorted(by_rule)
    assert not {"fetch_shard", "benchmark_download"} & set(by_rule)  # localrules: the login node
    # the ~40 small evaluation/table/figure jobs: one SLURM job per connected part of the group
    assert len(by_rule["train"]) == 20 and len(by_rule["summaries"]) <= 8
    assert {j["cpus"] for j in by_rule["encode"]} == {"2"}  # the rule's threads, not 1

    # a second run does nothing; the outputs equal a local run's
    again = snakemake(work, "--profile", str(profile), "--configfile", str(cfg), "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert local_run.wait(timeout=3600) == 0, (local / "snakemake.out").read_text()[-4000:]
    # the toy benchmark's path differs between the two directories; nothing else may
    a = {k: v.replace(str(work).encode(), b"WORK") for k, v in comparable_outputs(work).items()}
    b = {k: v.replace(str(local).encode(), b"WORK") for k, v in comparable_outputs(local).items()}
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, differ


def test_no_account_or_a_gpu_partition_without_gpus_stop_before_submitting(cluster, tmp_path):
    work = tmp_path / "w"
    cfg = tiny_config(work)
    target = "results/data/openmoji/captions.tsv"  # one cheap job, should a check not fire
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    r = snakemake(work, target, "--profile", str(shipped_profile(tmp_path / "p0", account="")),
                  "--configfile", str(cfg), timeout=300)
    assert r.returncode != 0
    assert "No SLURM account: set ACCOUNT at the top of profiles/slurm" in r.stdout + r.stderr

    auto = work / "auto.yaml"
    auto.write_text(yaml.safe_dump({"encoder": {"device": "auto"}}))
    r = snakemake(work, target, "--profile", str(shipped_profile(tmp_path / "p1")),
                  "--configfile", str(cfg), str(auto), timeout=300)
    assert r.returncode != 0
    assert "SLURM partition 'gpu' has no GPUs" in r.stdout + r.stderr
    assert "set encoder.device: cpu" in r.stdout + r.stderr
    submitted_here = [x for x in _run("sacct", "-X", "-n", "-P", "-S", since, "--format=JobIDRaw,WorkDir")
                      .stdout.splitlines() if x.endswith("|" + str(work))]
    assert not submitted_here
