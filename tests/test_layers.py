"""The package's layering: lower layers never import higher ones (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stale"
# each package may import only the packages of its own or a lower rank
RANK = {"core": 0, "data": 1, "text": 1, "evaluation": 1, "synth": 2, "model": 3, "training": 4,
        "baselines": 5, "viz": 5, "runs": 6, "cli": 7}
TOP = {"api": 7, "__init__": 7, "__main__": 8}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stale."):
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("stale."):
                    yield a.name, node.lineno


def _rank(module_path: str) -> int | None:
    parts = module_path.split(".")
    head = parts[1] if len(parts) > 1 else ""
    return RANK.get(head, TOP.get(head))


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path):
    rel = path.relative_to(SRC)
    own = RANK.get(rel.parts[0]) if len(rel.parts) > 1 else TOP.get(rel.stem)
    assert own is not None, f"{rel}: package not in the layer map (add it to tests/test_layers.py)"
    for module, line in _imports(path):
        r = _rank(module)
        assert r is not None, f"{rel}:{line} imports {module}, a package not in the layer map"
        assert r <= own, f"{rel}:{line} imports {module} from a higher layer"


def test_predict_does_not_import_the_trainer():
    src = (SRC / "runs" / "predict.py").read_text()
    assert "stale.training.trainer" not in src and "stale.runs.train" not in src
