"""The package's layers point one way: its import graph has no cycle, and no module hides a
dependency in a function (only optional dependencies are imported where they are used)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "condflow"
#: Imported inside the functions that need them: not installed with condflow itself.
OPTIONAL = {"onnx", "onnxruntime", "onnxscript", "torch.utils.tensorboard"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(name: str, path: Path, node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The condflow modules an import statement in module ``name`` loads."""
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        found = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        # A module inside a package always runs the package's __init__ first: not an edge.
        if target and target != name and not name.startswith(target + "."):
            out.append(target)
    return out


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    edges = {
        name: {t for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Import | ast.ImportFrom)
               for t in _targets(name, path, node, modules)}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [name, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [name])
        state[name] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [])


def test_functions_import_only_optional_dependencies():
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                hidden += [f"{path.relative_to(ROOT)}:{node.lineno} {fn.name}: {n}"
                           for n in names if n not in OPTIONAL]
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_importing_condflow_leaves_the_matplotlib_backend_alone():
    code = ("import matplotlib; matplotlib.use('pdf'); import condflow, condflow.train, "
            "condflow.viz.mesh, condflow.viz.skeleton; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "pdf"
