#!/usr/bin/env bash
# Prepared GPU check for issue 6: 2:4 semi-structured kernels (cuSPARSELt and CUTLASS) vs dense,
# fp16 and bf16, on every distinct ViT-B/16 block Linear shape (the shape sweep) and end to end,
# at batches 64 and 256. Designed to finish in < 5 minutes on one GPU (small repeat counts).
# Usage (repository root): OUT=/some/dir bash benchmarks/gpu_2to4.sh
set -euo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
PY="${VPY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1
nvidia-smi -L
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cusparselt', torch.backends.cusparselt.is_available() and torch.backends.cusparselt.version())"
# shape sweep + end-to-end ViT-B/16 (ToMe r=8 only changes the MAC table)
"$PY" -m certkit bench-2to4 --model vit_base_patch16_224 --batch 64 256 --dtype fp16 bf16 \
    --repeats 20 --warmup 5 --tome-r 8 --out "$OUT/gpu_2to4.json"
# small-batch end of the shape sweep (no end-to-end): where 2:4 does not pay off
"$PY" -m certkit bench-2to4 --model vit_base_patch16_224 --batch 1 8 --dtype fp16 \
    --repeats 20 --warmup 5 --no-end-to-end --out "$OUT/gpu_2to4_small_batch.json"
# conv im2col endpoint: ResNet-50 convs, dense-im2col vs sparse-im2col vs cuDNN
"$PY" -m certkit bench-2to4 --model resnet50 --batch 64 --dtype fp16 \
    --repeats 10 --warmup 3 --no-shapes --no-end-to-end --out "$OUT/gpu_2to4_resnet50_conv.json"
echo "wrote $OUT/gpu_2to4.json $OUT/gpu_2to4_small_batch.json $OUT/gpu_2to4_resnet50_conv.json"
