"""The package's layering: no import circle inside `rlaif/`, and no lower layer importing an upper one.

Every import counts, also one inside a function (a lazy import is still a dependency). A
module may import modules of its own package, and of any lower layer; within one layer,
packages do not import each other (evaluation does not import ppo, and so on).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlaif"

# Lowest first. A module belongs to the first entry that is its name or a parent of it.
LAYERS: list[tuple[str, ...]] = [
    ("rlaif.io", "rlaif.stats", "rlaif.secrets", "rlaif.markdown", "rlaif.overrides", "rlaif.batching",
     "rlaif.resources",
     "rlaif.measurements", "rlaif.local_paths"),
    ("rlaif.runs.manifest", "rlaif.runs.signals"),  # files.json; a graceful stop on signals
    ("rlaif.runs.folder",),  # every file name of a run folder; the rule for an existing one
    ("rlaif.config_loading",),  # YAML + overrides -> any pydantic run config, dotted-key errors
    ("rlaif.config_generation",),  # the generation section: sampling, the vLLM engine
    ("rlaif.config",),
    ("rlaif.runs.changes", "rlaif.runs.metrics_log"),  # what a --resume changed; metrics.jsonl
    ("rlaif.data",),
    ("rlaif.judges", "rlaif.models"),
    ("rlaif.engines",),  # generation engines in their own process (a vLLM server)
    ("rlaif.export", "rlaif.tracking"),  # what a run leaves: final/, trackers
    ("rlaif.runs.method",),  # what a training method offers the run lifecycle
    ("rlaif.ppo", "rlaif.dpo", "rlaif.evaluation", "rlaif.integrations", "rlaif.testing"),
    ("rlaif.model_card",),  # the card reads a run's files, the report's table included
    ("rlaif.workbench",),  # one job judging a file of samples or pairs: score, compare, label
    ("rlaif.runs",),  # a run start to end; comparing finished runs
    ("rlaif.demo",),
    ("rlaif.serve",),  # judges behind HTTP for OpenRLHF / veRL / TRL
    ("rlaif.commands", "rlaif.cli"),
    ("rlaif",),  # the package itself: its public names
]


def module_names() -> dict[str, Path]:
    """Dotted name -> file of every module in the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The rlaif modules `path` imports (top level or inside functions), resolved to modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:  # `from rlaif.x import name`: the module is rlaif.x
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + ".") and not t.startswith(name + "."):
                found.add(t)  # a package importing its own children (re-exports) is not an edge
    return found


def graph() -> dict[str, set[str]]:
    mods = module_names()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def layer_of(name: str) -> tuple[int, str]:
    """(layer index, the layer entry that owns `name`), the most specific entry winning."""
    best: tuple[int, str] | None = None
    for i, entries in enumerate(LAYERS):
        for entry in entries:
            if (name == entry or name.startswith(entry + ".")) and (best is None or len(entry) > len(best[1])):
                best = (i, entry)
    assert best is not None, f"{name} is in no layer: add it to LAYERS in {__file__}"
    return best


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if state.get(start) is None and (found := visit(start)):
            return found
    return None


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(edges.items()):
        src_layer, src_entry = layer_of(src)
        for dst in sorted(targets):
            dst_layer, dst_entry = layer_of(dst)
            if dst_layer > src_layer:
                bad.append(f"{src} (layer {src_layer}) imports {dst} (layer {dst_layer}, higher)")
            elif dst_layer == src_layer and dst_entry != src_entry and src_entry != "rlaif":
                bad.append(f"{src} imports {dst}: {src_entry} and {dst_entry} share a layer and "
                           "must not depend on each other")
    return bad


def test_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_upward_or_sideways_import():
    assert layer_violations(graph()) == []


def test_config_does_not_import_torch():
    import subprocess
    import sys

    code = "import rlaif.config, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("edges,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),  # a three-module circle
    ({"a": {"b"}, "b": set()}, None),                               # a chain is fine
    ({"a": {"a2", "b"}, "a2": {"b"}, "b": set()}, None),            # a diamond is fine
])
def test_find_cycle_on_known_graphs(edges, expected):
    assert find_cycle(edges) == expected


def test_layer_check_catches_an_upward_and_a_sideways_import():
    edges = {"rlaif.config": {"rlaif.ppo.trainer"}, "rlaif.evaluation.holdout": {"rlaif.ppo.policy"},
             "rlaif.ppo.trainer": {"rlaif.config"}}
    bad = layer_violations(edges)
    assert len(bad) == 2
    assert f"rlaif.config (layer {layer_of('rlaif.config')[0]}) imports rlaif.ppo.trainer" in bad[0]
    assert "rlaif.evaluation and rlaif.ppo share a layer" in bad[1]
