"""``ganforge audit RUN --members SRC --non-members SRC``: membership inference (LOGAN white-box,
GAN-Leaks black-box and calibrated), ROC AUC and TPR at 1 % FPR, a ROC plot, and the run page's
audit section (``RUN/audit/audit.json`` + ``RUN/audit/roc.png``)."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json, add_network_options, add_quiet, require_fp32_metric, write_json

SRC_HELP = ("a folder, a prepared dataset or a built-in split (mnist:train), optionally sliced as SRC[a:b] "
            "(images a..b-1 in loading order: train --max-images N trained on SRC[:N])")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="membership inference on a GAN run: LOGAN (white-box) and GAN-Leaks (black-box), ROC AUC",
        description="How much does RUN leak its training images? --members: images it was trained on "
                    "(e.g. --members DIR with the DIR it trained on, or mnist:train[:500] for "
                    "train --data mnist --max-images 500); --non-members: images of the same distribution it "
                    "never saw (e.g. mnist:test[:500]). Reports each attack's ROC AUC (0.5: no leak) and TPR "
                    "at 1%% FPR; writes RUN/audit/audit.json and RUN/audit/roc.png for the run page.")
    p.add_argument("run", help="GAN run directory")
    p.add_argument("--members", required=True, help=f"the run's training images: {SRC_HELP}")
    p.add_argument("--non-members", required=True, help=f"unseen images of the same distribution: {SRC_HELP}")
    p.add_argument("--reference", default=None,
                   help="for the calibrated GAN-Leaks: another GAN run trained on disjoint data (the paper's "
                        "reference model), or an image set disjoint from both query sets (standing in for one)")
    p.add_argument("--k", type=int, default=None, help="generated samples for GAN-Leaks (default 10000)")
    p.add_argument("--n", type=int, default=None, help="at most N images of each query set (seeded choice)")
    p.add_argument("--seed", type=int, default=0, help="sampling / subset seed (default 0)")
    p.add_argument("--checkpoint", default="latest", help="latest, best or step-N (default latest)")
    p.add_argument("--out", default=None, metavar="PNG",
                   help="also write the ROC plot here (RUN/audit/roc.png is always written)")
    add_json(p, "the attacks' AUC, TPR at 1%% FPR, ROC curves and the protocol")
    add_quiet(p)
    add_network_options(p)
    p.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    from ..errors import GanforgeError
    from ..metrics.membership import DEFAULT_K, audit, plot_roc, save_to_run

    require_fp32_metric(args.precision, "audit")
    k = DEFAULT_K if args.k is None else args.k
    if k < 1 or (args.n is not None and args.n < 2):
        raise GanforgeError("--k must be >= 1 and --n >= 2")
    progress = not args.quiet and sys.stderr.isatty()
    result = audit(args.run, args.members, args.non_members, k=k, reference=args.reference, n=args.n,
                   seed=args.seed, checkpoint_name=args.checkpoint, device=args.device, progress=progress)
    human = sys.stderr if args.json_path == "-" else sys.stdout
    p = result["protocol"]
    print(f"audit of {args.run} (step {p['step']}): {p['members']['n']} members, {p['non_members']['n']} "
          f"non-members", file=human)
    for name, r in result["attacks"].items():
        print(f"{name:20s} AUC {r['auc']:.4f}  TPR@1%FPR {r['tpr_at_1pct_fpr']:.4f}", file=human)
    json_path, png = save_to_run(args.run, result)
    print(f"wrote {json_path} and {png} (the run page's audit section)", file=human)
    if args.out:
        print(f"wrote {plot_roc(result, args.out, title=f'membership inference: {args.run}')}", file=human)
    write_json(result, args.json_path)
    return 0
