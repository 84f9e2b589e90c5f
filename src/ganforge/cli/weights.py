"""``ganforge weights list|fetch|verify|path|unpin``."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json, add_quiet, write_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("weights", help="list, fetch and verify pretrained weights")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="known weights and where they are")
    add_json(listing, "the registry (name, file, URL, sha256, pin, local path)")
    add_quiet(listing)
    listing.set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download NAME into the cache (sha256-checked)")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    add_quiet(fetch)
    add_json(fetch, "the file fetched (name, path, sha256 or pin)")
    fetch.set_defaults(func=_fetch)
    verify = actions.add_parser("verify", help="check the sha256 of local files (all, or NAME)")
    verify.add_argument("name", nargs="?")
    add_quiet(verify)
    add_json(verify, "one row per file (name, status, path, detail)")
    verify.set_defaults(func=_verify)
    unpin = actions.add_parser("unpin", help="forget the pinned sha256 of NAME (files upstream publishes no checksum "
                                             "for are pinned at their first download; the next download pins again)")
    unpin.add_argument("name")
    add_quiet(unpin)
    unpin.set_defaults(func=_unpin)
    path = actions.add_parser("path", help="print the local path of NAME (no download)")
    path.add_argument("name")
    add_quiet(path)
    path.set_defaults(func=_path)


def _fetch(args: argparse.Namespace) -> None:
    from .. import weights

    path = weights.fetch(args.name, force=args.force, progress=not args.quiet)
    print(path, file=sys.stderr if args.json_path == "-" else sys.stdout)
    entry = weights.WEIGHTS.get(args.name)
    write_json({"name": args.name, "path": str(path), "sha256": entry.sha256 or None,
                "pinned_sha256": None if entry.sha256 else weights.pinned(entry)}, args.json_path)


def _path(args: argparse.Namespace) -> None:
    from .. import weights

    print(weights.resolve(args.name, download=False, verify=False))


def _list(args: argparse.Namespace) -> None:
    from .. import weights

    rows = []
    for name, entry in weights.WEIGHTS.items():
        local = weights.find(name)
        pin = weights.pinned(entry) if not entry.sha256 else None
        rows.append({**entry.as_dict(), "local_path": str(local) if local else None, "pinned_sha256": pin})
        if args.json_path == "-":
            continue
        print(f"{name:24s} {'present' if local else 'absent ':8s} {entry.filename}")
        print(f"{'':24s} {entry.description}; input: {entry.normalisation}; licence: {entry.licence}")
        if not entry.sha256:
            print(f"{'':24s} sha256: {'pinned ' + pin + ' (first download)' if pin else 'none published, not pinned yet'}")
        size = f"about {entry.size / 1e6:.0f} MB" if entry.size else "size unknown"
        print(f"{'':24s} {'download: ' + entry.url + ' (' + size + ')' if entry.url else 'no public download: put the file in GANFORGE_WEIGHTS_DIR'}")
    write_json(rows, args.json_path)


def _verify(args: argparse.Namespace) -> int:
    from .. import weights

    names = [args.name] if args.name else weights.WEIGHTS.names()
    human = sys.stderr if args.json_path == "-" else sys.stdout
    rows = []
    for name in names:
        local = weights.find(name)
        entry = weights.WEIGHTS.get(name)
        if local is None:
            row = {"name": name, "status": "absent", "path": None, "detail": ""}
        elif not entry.sha256 and weights.pinned(entry) is None:
            row = {"name": name, "status": "unverifiable", "path": str(local), "detail": "no published sha256, not pinned"}
        else:
            try:
                weights.check(entry, local)
                how = "" if entry.sha256 else f"matches the pin {weights.pinned(entry)[:16]}…"
                row = {"name": name, "status": "ok", "path": str(local), "detail": how}
            except weights.WeightsError as exc:
                row = {"name": name, "status": "bad", "path": str(local), "detail": str(exc)}
        rows.append(row)
        if row["status"] == "absent":
            print(f"{name}: absent", file=human)
        elif row["status"] == "unverifiable":
            print(f"{name}: present, unverifiable ({row['detail']}) ({local})", file=human)
        elif row["status"] == "ok":
            print(f"{name}: ok{', ' + row['detail'] if row['detail'] else ''} ({local})", file=human)
        else:
            print(f"{name}: BAD: {row['detail']}", file=human)
    write_json(rows, args.json_path)
    return 1 if any(r["status"] == "bad" for r in rows) else 0


def _unpin(args: argparse.Namespace) -> None:
    from .. import weights

    entry = weights.WEIGHTS.get(args.name)
    if entry.sha256:
        print(f"{args.name}: has a published sha256 ({entry.sha256[:16]}…); nothing is pinned")
    elif weights.unpin(args.name):
        print(f"{args.name}: pin removed; the next download pins again")
    else:
        print(f"{args.name}: was not pinned")
