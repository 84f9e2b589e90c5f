#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one run (about 4 minutes on one H200):
#   StyleGAN2 256x256 training images/s (fp32 vs AMP bf16/fp16), DCGAN 64x64 vs the reference loop,
#   AdaIN 512x512 images/s, video style transfer frames/s at 640x360 (per-frame and temporal),
#   upscale of a 512x512 image vs a plain forward.
# Needs PyAV and the offline assets: WEIGHTS (a folder with vgg19_imagenet_caffe_conv1_1-conv5_1_rgb_fp16.pth),
# VIDEO (cutBunny.mp4) and STYLE (an image). Everything is printed; LOG collects it.
#   WEIGHTS=../shared/assets/weights VIDEO=../shared/assets/video/cutBunny.mp4 \
#   STYLE=../shared/assets/images/style/starry_night.jpg bash benchmarks/gpu_checks.sh
set -u
WEIGHTS=${WEIGHTS:-../shared/assets/weights}
VIDEO=${VIDEO:-../shared/assets/video/cutBunny.mp4}
STYLE=${STYLE:-../shared/assets/images/style/starry_night.jpg}
LOG=${LOG:-gpu-checks.log}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GANFORGE_OFFLINE=1 GANFORGE_WEIGHTS_DIR="$WEIGHTS"

step() {  # step NAME SECONDS COMMAND...: one benchmark, bounded, its output in the log whatever happens
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T)): $*"
  timeout "$limit" "$@" 2>&1
  echo "== $name: exit $?"
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cudnn tf32', torch.backends.cudnn.allow_tf32, 'matmul tf32', torch.backends.cuda.matmul.allow_tf32)"
  step stylegan2-256 170 python benchmarks/bench_train_speed.py --arch stylegan2 --resolution 256 --width 64 \
      --batch-size 32 --iters 32 --rounds 2 --variants fp32,auto,fp16
  step dcgan-64 70 python benchmarks/bench_train_speed.py --iters 100 --rounds 3 --variants fp32,auto,fp16
  step video-640x360 170 python benchmarks/bench_video.py --video "$VIDEO" --style "$STYLE" --decoder random \
      --device cuda --speed-frames 96 --batch-size 16 --rounds 2 --threads 8 --out /tmp/gpu-video
  step adain-512 70 python benchmarks/bench_adain.py --device cuda --repeats 20 --threads 8
  step upscale-512-fp32 50 python benchmarks/bench_upscale.py --device cuda --precision fp32 --repeats 5 --threads 8
  step upscale-512-auto 50 python benchmarks/bench_upscale.py --device cuda --precision auto --repeats 5 --threads 8
} 2>&1 | tee "$LOG"
