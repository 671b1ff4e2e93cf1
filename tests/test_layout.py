"""The shape of the code: no import cycles among the project's modules, dependencies pointing one way,
bench/ as a few top-level modules beside its subpackages (README.md, "Where things are").

The import graph is read from the source with ``ast``: every import at any level (module level or inside a
function), relative imports resolved, ``from package import module`` counted as importing that module.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lrcore", "reference", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, level: int, here: str, is_package: bool) -> str:
    """The absolute module name of ``from <level dots><name> import ...`` written in module ``here``."""
    if level == 0:
        return name
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its source)."""
    modules = _modules()
    graph = {m: set() for m in modules}
    for mod, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, mod, is_package)
                for a in node.names:  # ``from pkg import module`` imports the module itself
                    targets.append(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
            # a name that is no module here is an older layout's (the asv suite's fallbacks) or not ours
            graph[mod] |= {t for t in targets if t in modules and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Per strongly connected component of more than one module (Tarjan): one shortest cycle through it
    (modules, the first repeated last) and all its modules."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                out.append((_a_cycle(graph, set(comp)), sorted(comp)))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _a_cycle(graph, comp: set[str]) -> list[str]:
    """A shortest cycle through the smallest module of a strongly connected component (breadth-first)."""
    start = min(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]  # start ... v, back to start
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def _sub(graph, keep) -> dict[str, set[str]]:
    return {m: {t for t in deps if keep(t)} for m, deps in graph.items() if keep(m)}


def _fmt(found) -> str:
    return "import cycles:\n" + "\n".join(f"  {' -> '.join(c)}  (all of {', '.join(comp)} reach each other)"
                                           for c, comp in found)


def test_the_graph_sees_imports_inside_functions():
    g = import_graph()
    assert "bench.matrix.spec" in g["bench.matrix.runner"]            # module level, relative
    assert "bench.train.find_lr" in g["bench.matrix.runner"]          # inside a function, relative
    assert "bench.matrix.spec" in g["bench.matrix"]                   # a package's face
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [(["a", "b", "c", "a"], ["a", "b", "c"])]


def test_no_import_cycles_in_bench_and_reference():
    found = cycles(_sub(import_graph(), lambda m: not m.startswith("lrcore")))
    assert not found, _fmt(found)


def test_no_cycles_in_lrcore():
    """lrcore's own cycles (``Schedule`` reaching its text form and evaluation) are opened by a base module
    in lrcore; until then this test names them."""
    found = cycles(_sub(import_graph(), lambda m: m.split(".")[0] == "lrcore"))
    assert not found, _fmt(found)


def _imports_of(graph, prefix):
    return {(m, t) for m, deps in graph.items() if m == prefix or m.startswith(prefix + ".") for t in deps}


def _layer(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "bench" and len(parts) > 1 else parts[0]


#: Who may import whom: cli -> speed / matrix -> train -> lrcore; report reads files and lrcore only;
#: results and machine sit below every bench layer.
ALLOWED = {
    "lrcore": {"lrcore"},
    "reference": {"reference", "lrcore"},
    "bench.results": set(),
    "bench.machine": {"lrcore"},
    "bench.train": {"bench.train", "bench.results", "bench.machine", "lrcore", "reference"},
    "bench.matrix": {"bench.matrix", "bench.train", "bench.results", "bench.machine", "lrcore"},
    "bench.report": {"bench.report", "bench.results", "lrcore"},
    "bench.speed": {"bench.speed", "bench.matrix", "bench.train", "bench.results", "bench.machine", "lrcore"},
}


def test_dependencies_point_one_way():
    g = import_graph()
    bad = []
    for mod, deps in g.items():
        layer = _layer(mod)
        if layer in ("bench", "bench.cli"):  # the package face and the command line may use every layer
            continue
        allowed = ALLOWED[layer] | {layer}
        bad += [f"{mod} -> {t}" for t in sorted(deps) if _layer(t) not in allowed]
    assert not bad, "imports against the direction (README.md, Where things are):\n  " + "\n  ".join(bad)


def test_report_never_imports_the_runner_or_the_trainers():
    g = import_graph()
    bad = [(m, t) for m, t in _imports_of(g, "bench.report")
           if t.startswith(("bench.matrix", "bench.train", "bench.speed", "bench.cli"))]
    assert not bad, bad


def test_bench_has_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    subpackages = sorted(p.name for p in (ROOT / "bench").iterdir() if (p / "__init__.py").is_file())
    assert len([t for t in top if t != "__init__.py"]) <= 6, top
    assert subpackages == ["cli", "matrix", "report", "speed", "train"], subpackages


def test_light_modules_import_no_torch():
    """The matrix spec, the training config and the report are usable without torch being imported."""
    code = ("import sys, bench.matrix, bench.train, bench.train.config, bench.report, bench.results, bench.machine; "
            "bench.matrix.load_matrix('quick'); print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]", r.stdout


def test_config_names_match_the_model():
    from bench.train.config import ACTIVATION_NAMES
    from bench.train.model import ACTIVATIONS
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80


def test_modules_and_functions_read_in_one_view():
    """No module of lrcore/, reference/, bench/ over 800 lines and no function over 80 (issue 33's rule:
    a long job is split into named steps)."""
    long_modules, long_functions = [], []
    for mod, path in _modules().items():
        src = path.read_text()
        if src.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{mod}: {src.count(chr(10))} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{mod}.{node.name} (line {node.lineno}): {n} lines")
    assert not long_modules and not long_functions, long_modules + long_functions
