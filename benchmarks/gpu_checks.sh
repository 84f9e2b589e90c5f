#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one run, every step bounded by `timeout` (at most ~8 minutes
# in all by default; FULL=1 adds the video and AdaIN checks, ~4 more):
#   gradfix numerics on CUDA (R1 and its D gradients, custom double backward vs stock autograd);
#   StyleGAN2 256x256 paper256 shape (width 64, batch 32) training images/s, fp32 vs bf16/fp16 autocast;
#   the official StyleGAN2-ADA code on the same card in the same run, when SG2ADA names a checkout;
#   StyleGAN2's modulated convolution fused / non-fused / auto when sampling (256x256, batch 8);
#   DCGAN 64x64 vs the reference loop; upscale of a 512x512 image vs a bare forward (fp32 and auto).
# Optional assets for FULL=1: WEIGHTS (a folder with vgg19_imagenet_caffe_conv1_1-conv5_1_rgb_fp16.pth),
# VIDEO (cutBunny.mp4), STYLE (an image); PyAV. Everything is printed; LOG collects it.
#   SG2ADA=/path/to/stylegan2-ada-pytorch bash benchmarks/gpu_checks.sh
set -u
WEIGHTS=${WEIGHTS:-../shared/assets/weights}
VIDEO=${VIDEO:-../shared/assets/video/cutBunny.mp4}
STYLE=${STYLE:-../shared/assets/images/style/starry_night.jpg}
LOG=${LOG:-gpu-checks.log}
SG2ADA=${SG2ADA:-}
FULL=${FULL:-0}
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
  step gradfix-cuda 40 python - <<'PY'
import torch
from ganforge.losses import d_real_and_r1
from ganforge.nets import GanNetSpec, build_gan
torch.backends.cudnn.allow_tf32 = False  # compare fp32 with fp32
for arch in ("stylegan2", "dcgan"):
    torch.manual_seed(0)
    _, D = build_gan(arch, GanNetSpec(64, 3, width=32))
    D = D.cuda()
    real = torch.randn(8, 3, 64, 64, device="cuda")
    out = []
    for on in (False, True):
        D.zero_grad(set_to_none=True)
        logits, r1 = d_real_and_r1(D, real, None, gradfix=on)
        (logits.mean() + r1).backward()
        out.append((r1.item(), [p.grad.clone() for p in D.parameters() if p.grad is not None]))
    err = max(((a - b).abs().max() / a.abs().max().clamp(min=1e-6)).item() for a, b in zip(out[0][1], out[1][1]))
    print(f"{arch}: r1 stock {out[0][0]:.6g} gradfix {out[1][0]:.6g}; max relative D-gradient difference {err:.2e}",
          "PASS" if err < 1e-4 else "FAIL")
PY
  step stylegan2-256 170 python benchmarks/bench_train_speed.py --arch stylegan2 --resolution 256 --width 64 \
      --batch-size 32 --iters 24 --rounds 2 --variants fp32,bf16,fp16
  if [ -n "$SG2ADA" ]; then
    step official-256 150 env SG2ADA="$SG2ADA" python benchmarks/bench_vs_official.py --device cuda --resolutions 256 \
        --width 64 --batch-size 32 --rounds 1 --threads 8
  else
    echo "== official-256: skipped (set SG2ADA to an NVlabs/stylegan2-ada-pytorch checkout)"
  fi
  step modconv-256 40 python benchmarks/bench_modconv.py --device cuda --resolution 256 --batch 8 --rounds 5
  step dcgan-64 70 python benchmarks/bench_train_speed.py --iters 100 --rounds 3 --variants fp32,auto,fp16
  step upscale-512-fp32 50 python benchmarks/bench_upscale.py --device cuda --precision fp32 --repeats 5 --threads 8
  step upscale-512-auto 50 python benchmarks/bench_upscale.py --device cuda --precision auto --repeats 5 --threads 8
  if [ "$FULL" = 1 ]; then
    step video-640x360 170 python benchmarks/bench_video.py --video "$VIDEO" --style "$STYLE" --decoder random \
        --device cuda --speed-frames 96 --batch-size 16 --rounds 2 --threads 8 --out /tmp/gpu-video
    step adain-512 70 python benchmarks/bench_adain.py --device cuda --repeats 20 --threads 8
  fi
} 2>&1 | tee "$LOG"
