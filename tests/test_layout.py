"""The package's shape: no import cycles between modules, and imports that follow the flow
(kernels import nothing of ours, models know no I/O, nothing below the CLI imports it).

Every `import` counts, also those inside functions and under TYPE_CHECKING: a cycle hidden in
a function is still two modules that need each other."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where each installed package lives in the checkout (pyproject's package-dir).
PACKAGES = {"streamdn": ROOT / "streamdn", "streamdn.kernels": ROOT / "kernels", "streamdn.models": ROOT / "models"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if name.startswith("streamdn.kernels") and pkg == "streamdn" or "weights" in rel.parts:
                continue
            found[name] = path
    return found


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """{module: the streamdn modules it imports}, by reading the source (nothing is imported)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                k = known(t) if t.startswith("streamdn") else None
                if k is not None and k != mod:
                    graph[mod].add(k)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_of(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert found == [], "modules that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(c) for c in found)


# What each part may not import: the flow goes kernels/models/data -> io -> core -> jobs -> batch,
# tools -> cli.
FORBIDDEN = {
    "kernels": {"*"},
    "models": {"io", "jobs", "batch", "tools", "cli", "denoiser", "pipeline", "data"},
    "data": {"io", "jobs", "batch", "tools", "cli", "denoiser", "pipeline", "models"},
    "io": {"jobs", "batch", "tools", "cli", "denoiser", "pipeline"},
    "jobs": {"batch", "tools", "cli"},
    "batch": {"tools", "cli"},
    "tools": {"batch", "cli"},
}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_imports_follow_the_flow(part: str) -> None:
    graph = import_graph()
    bad = []
    for mod, deps in graph.items():
        if _package_of(mod) != part:
            continue
        for dep in deps:
            target = _package_of(dep)
            if dep == "streamdn" or "*" in FORBIDDEN[part] and target != part or target in FORBIDDEN[part]:
                bad.append(f"{mod} -> {dep}")
    assert bad == [], f"{part} imports what it should not: " + ", ".join(sorted(bad))


def test_only_the_cli_and_main_import_the_cli() -> None:
    graph = import_graph()
    users = sorted(m for m, deps in graph.items() if any(_package_of(d) == "cli" for d in deps)
                   and _package_of(m) != "cli" and m != "streamdn.__main__")
    assert users == []


def test_the_checker_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("user", [None, "workqueue"])
def test_import_sets_the_thread_settings_unless_the_user_did(user: str | None) -> None:
    """`import streamdn` makes idle OpenMP threads sleep and puts Numba's OpenMP layer first
    (Numba would take TBB where the tbb package is installed); a user's own settings win."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER_PRIORITY")}
    if user is not None:
        env["NUMBA_THREADING_LAYER_PRIORITY"] = user
    code = ("import streamdn, os, numba; print(os.environ['OMP_WAIT_POLICY']); "
            "print(' '.join(numba.config.THREADING_LAYER_PRIORITY))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    policy, priority = out.stdout.split("\n")[:2]
    assert policy == "PASSIVE"
    assert priority == (user if user is not None else "omp tbb workqueue")
