"""Layer integrity: kbops/'s import graph, read from the source (like the DAG-integrity test).

The floors, bottom up (README, Architecture):

    foundation   kbops, config, errors, schema, db, text, pii, migrations
    kb/          the ground floor of KB state changes: imports only the foundation's leaves
    stages       sources, extract, validate, index, review: peers, along ALLOWED_STAGE_IMPORTS
    doors        serve/ (HTTP), pipeline, cli/, demo, faq, airflow_adapter: may import anything below

Rules, each failing with ``module:line`` for every offending import:

(a) the foundation imports only the foundation, and ``kb/`` only ``schema``, ``text``,
    ``errors``, ``config``, ``pii`` and ``kb`` itself;
(b) a stage package imports another only along ALLOWED_STAGE_IMPORTS, and never a door;
(c) no import cycles among kbops modules (module-level and function-level imports;
    importing ``a.b.c`` also runs ``a.b``'s ``__init__``, so that counts as an edge too);
(d) no ``import kbops…`` / ``from kbops… import`` inside a function body, except the
    lazy imports listed in LAZY_IMPORTS, each with its reason;
(e) ``session_scope`` (the only way to open a KB session) appears only at the doors.

Imports under ``if TYPE_CHECKING:`` never run: they count for (a) and (b) (a typing
dependency is still a dependency) but not for (c) and (d), so a type-only back reference
is the one way to name a module that imports yours.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KBOPS = ROOT / "kbops"

FOUNDATION = {"kbops", "kbops.config", "kbops.errors", "kbops.schema", "kbops.db", "kbops.text", "kbops.pii", "kbops.migrations"}
#: What kb/ may import besides itself (the contract: "imports only schema/text/errors/config/pii").
KB_MAY_IMPORT = {"kbops.schema", "kbops.text", "kbops.errors", "kbops.config", "kbops.pii"}
STAGES = {"sources", "extract", "validate", "index", "review", "health"}
#: Which other stage packages each stage (and serve/) may import; every one may import kb/ and the foundation.
#: - sources -> kb: a sync proposes candidates and withdraws entries through kb/ alone.
#: - extract -> sources (the records and chat sessions it reads), index (Embedder, similarity for mining).
#: - validate -> index (Embedder.from_settings, similarity for near-duplicates).
#: - index -> nothing but kb/ (golden questions, releases, search).
#: - review -> validate (resubmit and the approval precheck re-run the gate), index (the Embedder it needs),
#:   extract (bot handoffs become gap topics with the chat gaps' own grouping and KB scoring: review/gaps.py).
#: - health -> review (gap topics), index (release reads): the KB's health figures, read-only.
#: - serve -> index (search), review (queue reads, accounts), validate (reports), health (the health page), and the pipeline's
#:   settings-level steps (the review page's decide/resubmit are the same calls as the CLI's).
ALLOWED_STAGE_IMPORTS: dict[str, set[str]] = {
    "sources": {"kb"},
    "extract": {"kb", "index", "sources"},
    "validate": {"kb", "index"},
    "index": {"kb"},
    "review": {"kb", "validate", "index", "extract"},
    "health": {"kb", "review", "index"},
    "serve": {"kb", "index", "review", "validate", "health", "pipeline"},
}
#: Doors: may import anything (they are what users, DAGs and HTTP clients call).
DOORS = {"pipeline", "cli", "demo", "faq", "airflow_adapter"}
#: Lazy kbops imports allowed inside function bodies: (importing module or package prefix, imported module prefix) -> why.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("kbops.index.embedder", "kbops.index.onnx_backend"): "onnxruntime/onnx load only for embed_backend onnx or onnx-int8",
    ("kbops.cli", "kbops"): "a door: handlers import the pipeline / serve extra only when run (see kbops/cli/__init__.py)",
}
#: Where session_scope may appear: the doors that open sessions, and db.py which defines it.
SESSION_DOORS = ("kbops.pipeline", "kbops.cli", "kbops.serve", "kbops.demo", "kbops.db")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported kbops module, dotted (the most specific module that exists)
    path: Path
    line: int
    in_function: bool
    type_checking: bool

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where()} {self.source} -> {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every kbops module (package __init__ under the package's name); migration scripts are not imported by kbops."""
    return {module_name(p): p for p in sorted(KBOPS.rglob("*.py")) if "versions" not in p.relative_to(KBOPS).parts}


def _resolve(name: str) -> str | None:
    """The longest prefix of ``name`` that is a kbops module (``kbops.index.release.flat_index`` -> ``kbops.index.release``)."""
    known = modules()
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function, type_checking
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, in_function, True
                yield from _walk(stmt, in_function, True)
            for stmt in child.orelse:
                yield stmt, in_function, type_checking
                yield from _walk(stmt, in_function, type_checking)
            continue
        yield from _walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda), type_checking)


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports_in(source: str, path: Path, module: ast.Module) -> list[Import]:
    """The kbops imports in one parsed module named ``source``."""
    is_package = path.name == "__init__.py"
    found = []
    for node, in_function, type_checking in _walk(module, False, False):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..kb import y
                anchor = source.split(".") if is_package else source.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from kbops.index import release` imports the module kbops.index.release.
            names = [f"{base}.{alias.name}" if _resolve(f"{base}.{alias.name}") == f"{base}.{alias.name}" else base for alias in node.names]
        for name in dict.fromkeys(names):
            if name == "kbops" or name.startswith("kbops."):
                target = _resolve(name)
                if target and target != source:
                    found.append(Import(source, target, path, node.lineno, in_function, type_checking))
    return found


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a kbops module in kbops/, with where it is and whether it runs at import time."""
    return tuple(imp for source, path in modules().items() for imp in imports_in(source, path, tree(path)))


def floor(module: str) -> str:
    """foundation | kb | a stage package | serve | a door (``kbops.index.release`` -> ``index``)."""
    if module in FOUNDATION or module.startswith("kbops.migrations."):
        return "foundation"
    return module.split(".")[1]


def _report(title: str, offenders: list[str]) -> str:
    return f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders)


def test_every_module_is_on_a_known_floor():
    known = {"foundation", "kb", "serve"} | STAGES | DOORS
    strays = [f"{m} ({p.relative_to(ROOT)})" for m, p in modules().items() if floor(m) not in known]
    assert not strays, _report("modules on no floor: add them to FOUNDATION, STAGES or DOORS in tests/test_layers.py and the README", strays)


def test_foundation_and_kb_import_nothing_above_them():
    """(a) The foundation imports only the foundation; kb/ only schema, text, errors, config, pii and kb/."""
    offenders = []
    for imp in imports():
        if floor(imp.source) == "foundation" and floor(imp.target) != "foundation":
            offenders.append(f"{imp}  (the foundation imports only the foundation)")
        if floor(imp.source) == "kb" and floor(imp.target) != "kb" and imp.target not in KB_MAY_IMPORT:
            offenders.append(f"{imp}  (kb/ imports only {', '.join(sorted(KB_MAY_IMPORT))} and kb/)")
    assert not offenders, _report("imports that run up from the ground floor", offenders)


def test_stage_packages_import_each_other_only_along_the_allowed_list():
    """(b) Stages are peers: each may import kb/, the foundation and the stages listed in ALLOWED_STAGE_IMPORTS."""
    offenders = []
    for imp in imports():
        src, dst = floor(imp.source), floor(imp.target)
        if src not in ALLOWED_STAGE_IMPORTS or dst in ("foundation", "kb", src):
            continue
        if dst not in ALLOWED_STAGE_IMPORTS[src]:
            allowed = ", ".join(sorted(ALLOWED_STAGE_IMPORTS[src]))
            offenders.append(f"{imp}  ({src}/ may import only {allowed}, kb/ and the foundation)")
    assert not offenders, _report("stage imports off the allowed list", offenders)


def _cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Elementary cycles, one per strongly connected component (Tarjan), each as a module path back to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        # Shortest way from start back to start inside the component (breadth first).
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt = []
            for v in frontier:
                for w in sorted(edges.get(v, {})):
                    if w in members and w not in previous:
                        previous[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        v = previous[start]
        while v != start:
            path.append(v)
            v = previous[v]
        cycles.append([start, *reversed(path[1:]), start])
    return cycles


def test_no_import_cycles():
    """(c) The import graph is a DAG: no module can be half-loaded when another needs it.

    Imports inside functions count too: moving one half of a circle into a function
    body only turns an import-time failure into a call-time one and hides the
    dependency (that is how the old index/golden ↔ publish ↔ serve/retriever and
    review/queue ↔ validate circles hid)."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports():
        if imp.type_checking:
            continue
        # Importing kbops.validate.gate runs kbops/validate/__init__.py first, unless the importer is inside kbops.validate.
        targets = [imp.target]
        parts = imp.target.split(".")
        for n in range(2, len(parts)):
            package = ".".join(parts[:n])
            if not (imp.source == package or imp.source.startswith(package + ".")):
                targets.append(package)
        for target in targets:
            if target != imp.source:
                edges.setdefault(imp.source, {}).setdefault(target, imp)
    described = []
    for cycle in _cycles(edges):
        hops = [f"{edges[a][b].where()} {a} -> {b}" + ("" if edges[a][b].target == b else f" (via {edges[a][b].target})") for a, b in zip(cycle, cycle[1:])]
        described.append(" -> ".join(cycle) + "\n    " + "\n    ".join(hops))
    assert not described, _report("import cycles", described)


def _lazy_allowed(imp: Import) -> bool:
    return any(
        (imp.source == src or imp.source.startswith(src + ".")) and (imp.target == dst or imp.target.startswith(dst + "."))
        for src, dst in LAZY_IMPORTS
    )


def test_no_kbops_imports_inside_functions_except_the_listed_lazy_ones():
    """(d) Imports sit at the top, where the reader and the layer rules see them; LAZY_IMPORTS lists the exceptions."""
    offenders = [f"{imp}" for imp in imports() if imp.in_function and not imp.type_checking and not _lazy_allowed(imp)]
    assert not offenders, _report("kbops imports inside function bodies (move them to the top, or add to LAZY_IMPORTS with a reason)", offenders)


def test_lazy_import_allowances_are_still_used():
    """An allowance nobody needs any more is a door left open: delete it."""
    used = {
        (src, dst)
        for imp in imports()
        if imp.in_function
        for src, dst in LAZY_IMPORTS
        if (imp.source == src or imp.source.startswith(src + ".")) and (imp.target == dst or imp.target.startswith(dst + "."))
    }
    assert set(LAZY_IMPORTS) <= used, f"unused LAZY_IMPORTS entries: {sorted(set(LAZY_IMPORTS) - used)}"


def test_sessions_are_opened_only_at_the_doors():
    """(e) Stage functions take ``db: Session``; only pipeline, cli/, serve/ and demo open ``session_scope(settings)``."""
    offenders = []
    for module, path in modules().items():
        if any(module == door or module.startswith(door + ".") for door in SESSION_DOORS):
            continue
        for node in ast.walk(tree(path)):
            uses = (
                (isinstance(node, ast.ImportFrom) and any(alias.name == "session_scope" for alias in node.names))
                or (isinstance(node, ast.Name) and node.id == "session_scope")
                or (isinstance(node, ast.Attribute) and node.attr == "session_scope")
            )
            if uses:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    assert not offenders, _report("session_scope outside the doors (take `db: Session` from the caller instead)", sorted(set(offenders)))


def test_the_graph_reader_sees_every_kind_of_import():
    """The reader itself: relative imports, `from pkg import module`, aliases, TYPE_CHECKING and function bodies."""
    src = """
from __future__ import annotations
from typing import TYPE_CHECKING
from kbops.index import release
from . import gate
from .. import text
import kbops.kb.audit as audit
if TYPE_CHECKING:
    from kbops.review.queue import list_items
class Checker:
    def run(self):
        from kbops.pipeline import decide
"""
    path = KBOPS / "validate" / "facts.py"
    found = {(imp.target, imp.in_function, imp.type_checking) for imp in imports_in("kbops.validate.facts", path, ast.parse(src))}
    assert found == {
        ("kbops.index.release", False, False),
        ("kbops.validate.gate", False, False),
        ("kbops.text", False, False),
        ("kbops.kb.audit", False, False),
        ("kbops.review.queue", False, True),
        ("kbops.pipeline", True, False),
    }
    assert module_name(path) == "kbops.validate.facts" and module_name(KBOPS / "kb" / "__init__.py") == "kbops.kb"
    assert floor("kbops.migrations.env") == "foundation" and floor("kbops.cli.app") == "cli"
    cycle = _cycles({"a": {"b": None}, "b": {"c": None}, "c": {"a": None}, "d": {"a": None}})  # type: ignore[dict-item]
    assert cycle == [["a", "b", "c", "a"]]
