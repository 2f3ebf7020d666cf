#!/usr/bin/env bash
# The GPU figures in one prepared run: the TDS model's training step at batch 32 under
# KERAS_BACKEND=jax (and TensorFlow where it is installed) beside the PyTorch reference on the same
# GPU, same windows and labels. The input pipeline (tf.data) needs TensorFlow; where TensorFlow is
# missing its windows/s are skipped (they are measured on the CPU: benchmark.py pipeline).
#
#   bash scripts/gpu_check.sh            # prints JSON lines; README's GPU rows come from them
#
# Needs: jax with CUDA, torch with CUDA, keras, omegaconf, h5py, numpy, scipy.
set -uo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
common="model=tds_conv_ctc batch=32 window=8000 padding=[1800,200] steps=20 warmup=5 vs_torch=true torch_device=cuda"
KERAS_BACKEND=jax python scripts/benchmark.py train $common
if python -c "import tensorflow" 2>/dev/null; then
  KERAS_BACKEND=tensorflow python scripts/benchmark.py train $common
  python scripts/benchmark.py pipeline --batches 100
else
  echo '{"skipped": "TensorFlow is not installed here: no TensorFlow step and no input-pipeline figure"}'
fi
