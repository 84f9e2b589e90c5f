"""``ganforge weights list|fetch|verify|path``."""

from __future__ import annotations

import argparse

from .. import weights


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("weights", help="list, fetch and verify pretrained weights")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="known weights and where they are").set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download NAME into the cache (sha256-checked)")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.set_defaults(func=lambda a: print(weights.fetch(a.name, force=a.force)))
    verify = actions.add_parser("verify", help="check the sha256 of local files (all, or NAME)")
    verify.add_argument("name", nargs="?")
    verify.set_defaults(func=_verify)
    path = actions.add_parser("path", help="print the local path of NAME (no download)")
    path.add_argument("name")
    path.set_defaults(func=lambda a: print(weights.resolve(a.name, download=False, verify=False)))


def _list(args: argparse.Namespace) -> None:
    for name, entry in weights.WEIGHTS.items():
        local = weights.find(name)
        print(f"{name:22s} {'present' if local else 'absent ':8s} {entry.filename}")
        print(f"{'':22s} {entry.description}; input: {entry.normalisation}; licence: {entry.licence}")


def _verify(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else weights.WEIGHTS.names()
    bad = 0
    for name in names:
        local = weights.find(name)
        if local is None:
            print(f"{name}: absent")
            continue
        entry = weights.WEIGHTS.get(name)
        if not entry.sha256:
            print(f"{name}: present, unverifiable (no published sha256) ({local})")
            continue
        try:
            weights.check(entry, local)
            print(f"{name}: ok ({local})")
        except weights.WeightsError as exc:
            bad += 1
            print(f"{name}: BAD: {exc}")
    return 1 if bad else 0
