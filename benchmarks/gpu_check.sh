#!/usr/bin/env bash
# GPU checks (issue #10), for a machine with an NVIDIA GPU and the CUDA build of torch==2.13.0:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default: results/gpu_check
#
# 1. the device as torch sees it;
# 2. the encoder on cuda: decode, bare forward and the encode stage end to end (images/s, full/bare);
# 3. the torch training engine on cuda: SGNS words/s, WIELD full-softmax words/s at the paper's
#    batch 20 and at a device-filling batch, and the paper's γ sweep time estimated from them;
# 4. the tiny DAG of tests/test_workflow.py with the encoder, WIELD, IESG and PIXIE on cuda (rc 0).
# Every figure also lands as JSON in OUT_DIR; paste the printed lines into the README.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch (is the CUDA build of torch installed?)"
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}: {p.name}, {p.total_memory / 2**30:.0f} GiB, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
PY

echo "== encoder (EfficientNet-Lite0) on cuda"
python benchmarks/encode_throughput.py --device cuda --n 2048 --batch-size 256 --workers 0 4 --json "$OUT/encode.json"

echo "== training engine on cuda"
python benchmarks/gpu_throughput.py --device cuda --json "$OUT/train.json"

echo "== WIELD full-softmax step variants on cuda (reference autograd + torch.optim vs ours)"
python benchmarks/wield_softmax.py --device cuda --batch 20 1024 --threads 1 --json "$OUT/wield_softmax.json"

echo "== tiny DAG on cuda"
python - "$OUT" <<'PY'
import sys, yaml
sys.path.insert(0, "tests")
from test_workflow import TINY, toy_benchmark
from pathlib import Path
out = Path(sys.argv[1]) / "dag"
out.mkdir(parents=True, exist_ok=True)
cfg = {**TINY, "encoder": {**TINY["encoder"], "device": "cuda"}, "wield": {**TINY["wield"], "device": "cuda"},
       "iesg": {**TINY["iesg"], "device": "cuda", "sgns": {**TINY["iesg"]["sgns"], "engine": "torch"}},
       "pixie": {**TINY["pixie"], "device": "cuda"}}
toy_benchmark(out / "toy.txt")
cfg["benchmarks"] = {"toy": {"path": str((out / "toy.txt").resolve())}}
(out / "tiny-cuda.yaml").write_text(yaml.safe_dump(cfg))
PY
start=$(date +%s)
snakemake --cores 8 --resources gpu=1 -d "$OUT/dag" --configfile "$OUT/dag/tiny-cuda.yaml" --workflow-profile none \
    > "$OUT/dag.log" 2>&1
echo "tiny DAG on cuda: rc 0 in $(( $(date +%s) - start )) s (log: $OUT/dag.log)"
