"""``ganforge project``: find the latent of an image (GAN inversion, optional pivotal tuning)."""

from __future__ import annotations

import argparse

from ._common import add_json, add_network_options, add_quiet, add_watermark, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="find the latent of an image in a StyleGAN's W or W+ space (GAN inversion)",
                       description="Projects IMAGE (resized and centre-cropped to the model's size) into W or W+ "
                                   "by the official StyleGAN2-ADA projector's recipe; writes latent.npz, "
                                   "latent.safetensors, target.png, reconstruction.png, progress.mp4 and the "
                                   "reconstruction's PSNR and perceptual distance. --pti-steps > 0 also fine-tunes "
                                   "the generator around the latent (pivotal tuning).")
    p.add_argument("image", help="image file")
    p.add_argument("--model", required=True,
                   help="stylegan2 run directory or export, official StyleGAN2-ADA .pkl, or a published name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=1000, help="optimisation steps (default 1000, as the official projector)")
    p.add_argument("--space", default="w+", choices=["w", "w+"], help="one w for all layers, or one per layer (default)")
    p.add_argument("--pti-steps", type=int, default=0, help="pivotal tuning steps after projection (0: none)")
    p.add_argument("--noise-reg", type=float, default=1e5, metavar="WEIGHT",
                   help="weight of the noise maps' regularisation (default 1e5, the official projector's: noise "
                        "cannot carry the image, so the latent does and edits move it; 0: the closest "
                        "reconstruction, e.g. 36 dB instead of 24 on a generated 32² image, with detail held "
                        "by noise that edits do not move)")
    p.add_argument("--loss", default="auto", choices=["auto", "lpips", "pixel"],
                   help="auto: LPIPS-style VGG19 when one is on this machine, else pixel MSE + SSIM")
    p.add_argument("--class", dest="label", type=int, default=None, help="class for the mean w (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--align", choices=["faces"], default=None,
                   help="faces: crop and align the photo's largest face as FFHQ was (YuNet detector, "
                        "downloaded once: ganforge weights fetch opencv-yunet)")
    add_network_options(p)
    add_quiet(p)
    add_json(p, "the summary (PSNR, distance, files)")
    add_watermark(p)
    p.set_defaults(func=_project)


def _project(args: argparse.Namespace) -> int:
    import sys

    from tqdm.auto import tqdm

    from ..editing import project

    bars = []  # opened at the first step, so that a bad input prints its one line alone

    def tick(step: int, loss: float) -> None:
        if not bars:
            bars.append(tqdm(total=args.steps, desc="projecting", unit="step", disable=args.quiet))
        if step < args.steps:
            bars[0].update(1)
            bars[0].set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        result = project(args.model, args.image, steps=args.steps, space=args.space, pti_steps=args.pti_steps,
                         loss=args.loss, label=args.label, seed=args.seed, device=args.device,
                         noise_weight=args.noise_reg,
                         precision=args.precision, align=args.align, callback=tick)
    finally:
        for bar in bars:
            bar.close()
    from ..provenance import model_provenance

    prov = model_provenance("project", args.model, {"steps": args.steps, "space": args.space, "pti_steps": args.pti_steps,
                                                    "loss": args.loss, "seed": args.seed, "noise_reg": args.noise_reg},
                            watermark=args.watermark)
    files = result.save(args.out, provenance=prov)
    human = sys.stderr if args.json_path == "-" else sys.stdout
    line = f"{files['latent']}: PSNR {result.psnr:.2f} dB, {result.loss} {result.distance:.4f}"
    if result.pti:
        line += f"; after PTI PSNR {result.pti['psnr_db_after']:.2f} dB, distance {result.pti['distance_after']:.4f}"
    print(line, file=human)
    write_json({"image": args.image, "model": args.model, **result.summary(), "files": files}, args.json_path)
    return 0
