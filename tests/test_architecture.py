"""The shape of the house, checked from the source (ast), so it stays true as features land:

- no import cycle among ganforge's modules, counting imports inside functions and counting a
  package ``__init__`` as a module like any other;
- every module sits in a layer (docs/architecture.md), and at most 3 imports go from a lower layer
  to a higher one, each named here and in docs/architecture.md with why;
- no module over 450 lines;
- no import of a ``_private`` name (or ``_private`` module) from another package.

A new module must be given a layer in ``LAYERS`` (the longest matching prefix wins), which is the
moment to decide what it may import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ganforge"
MAX_LINES = 450
MAX_UPWARD = 3

# (module prefix, layer): lower layers never import higher ones (docs/architecture.md, one paragraph each)
LAYERS: dict[str, int] = {
    # 0 ground: no torch needed, no ganforge imports above
    "ganforge.errors": 0, "ganforge.version": 0, "ganforge.paths": 0, "ganforge.registry": 0,
    "ganforge.download": 0,
    # 1 policy and pixels: the one device/precision policy, image and video files, image tensor ops
    "ganforge.device": 1, "ganforge.imageio": 1, "ganforge.provenance": 1, "ganforge.watermark": 1, "ganforge.imageops": 1, "ganforge.video.io": 1,
    # 2 building blocks: architectures, named weights, datasets, losses, augmentation, measures
    "ganforge.nets": 2, "ganforge.weights": 2, "ganforge.data": 2, "ganforge.losses": 2, "ganforge.augment": 2,
    "ganforge.metrics": 2,
    "ganforge.text": 2,  # captions, text encoders (builtin, clip), captioned digits (issue 20)
    "ganforge.fingerprint": 2,  # fingerprinted training: the encoder/decoder pair, its training, a batch wrapper
    "ganforge.nets.gradfix": 2,  # convolutions with first-order-convolution derivatives (R1, GP, path length)
    # 3 the training engine: loop, batches, checkpoints, the run-directory protocol, run_task; the
    #   checked safetensors container every saved model uses, and the save/load contract
    #   (save_pretrained / from_pretrained and the FAMILIES registry, which each family fills from
    #   its own package, as run loaders fill train.rundir's)
    "ganforge.train": 3, "ganforge.export.container": 3, "ganforge.export.contract": 3,
    "ganforge.train.watchdog": 3,
    # 4 model families: each one's config, task, inference object and file format
    "ganforge.train.gan": 4, "ganforge.train.textgan": 4, "ganforge.config": 4, "ganforge.generator": 4, "ganforge.sample": 4,
    "ganforge.export.generator_file": 4, "ganforge.published": 4, "ganforge.translate": 4, "ganforge.style": 4, "ganforge.restore": 4,
    "ganforge.editing": 4,
    # 5 what works across families: evaluation of generators, video, export of any family
    "ganforge.metrics.evaluation": 5, "ganforge.metrics.intraining": 5, "ganforge.metrics.nearest": 5,
    "ganforge.metrics.utility": 5, "ganforge.metrics.membership": 5,  # TSTR utility, membership-inference audit
    "ganforge.metrics.texteval": 5, "ganforge.metrics.clipscore": 5,  # text runs: prompts, R-precision, CLIP score
    "ganforge.video": 5, "ganforge.export": 5,
    # 6 entry points: Python API, any run, the demo report, the server, the CLI
    "ganforge": 6, "ganforge.api": 6, "ganforge.runs": 6, "ganforge.report": 6, "ganforge.export.run": 6, "ganforge.server": 7,
    "ganforge.report.textdemo": 6,  # the demo's prompts → images: trains through the API, so above ganforge.text
    "ganforge.cli": 8, "ganforge.__main__": 8,
}

# package facades that re-export a higher layer's names sit at that layer (exact names, not prefixes)
FACADES: dict[str, int] = {"ganforge.metrics": 5, "ganforge.export": 6}

# lower -> higher imports that stay, each with why (also named in docs/architecture.md)
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _imports(name: str, path: Path, is_pkg: bool):
    """(target module, imported name or None) for every ganforge import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ganforge":
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ganforge":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub, None) if sub in MODULES else (target, alias.name)


def _owner(target: str) -> str:
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _graph():
    edges, names = defaultdict(set), []
    for name, (path, is_pkg) in MODULES.items():
        for target, imported in _imports(name, path, is_pkg):
            owner = _owner(target)
            if owner != name:
                edges[name].add(owner)
            names.append((name, owner, target, imported))
    return edges, names


EDGES, IMPORTED_NAMES = _graph()


def _package(module: str) -> str:
    return module if MODULES[module][1] else module.rsplit(".", 1)[0]


def layer_of(module: str) -> int | None:
    if module in FACADES:
        return FACADES[module]
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else LAYERS[best]


def _cycles() -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in EDGES.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return out


def test_the_analysis_sees_the_package():
    """Guards the checks below against passing vacuously (a moved src/ or a parser that sees nothing)."""
    assert len(MODULES) > 80 and "ganforge.train.loop" in MODULES and "ganforge.device" in MODULES
    assert "ganforge.device" in EDGES["ganforge.train.loop"]
    assert sum(len(v) for v in EDGES.values()) > 300


def test_no_import_cycle():
    assert _cycles() == [], "import cycles (each list is one strongly connected set of modules)"


def test_every_module_has_a_layer():
    assert [m for m in sorted(MODULES) if layer_of(m) is None] == []


def test_imports_go_down_the_layers():
    upward = sorted((a, b) for a, targets in EDGES.items() for b in targets if layer_of(b) > layer_of(a))
    unexplained = [f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a, b in upward if (a, b) not in ALLOWED_UPWARD]
    assert unexplained == [], "imports from a lower layer to a higher one"
    assert len(ALLOWED_UPWARD) <= MAX_UPWARD
    assert set(ALLOWED_UPWARD) <= set(upward), "an allowed upward import no longer exists: remove it"
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for a, b in ALLOWED_UPWARD:
        assert f"{a} -> {b}" in doc, f"docs/architecture.md must name the upward import {a} -> {b} and why"


def test_no_module_over_450_lines():
    long = {m: n for m, (p, _) in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_private_name_imported_from_another_package():
    found = []
    for importer, owner, target, imported in IMPORTED_NAMES:
        private_module = any(part.startswith("_") and not part.startswith("__") for part in target.split(".")[1:])
        private_name = imported is not None and imported.startswith("_") and not imported.startswith("__")
        if (private_module or private_name) and _package(owner) != _package(importer):
            found.append(f"{importer}: {target}{'.' + imported if imported else ''}")
    assert found == []


@pytest.mark.parametrize("module", ["ganforge.errors", "ganforge.paths", "ganforge.registry", "ganforge.download",
                                    "ganforge.version"])
def test_ground_layer_imports_nothing_above_it(module):
    assert all(layer_of(t) == 0 for t in EDGES.get(module, ()))
