"""Imports flow one way: core <- ingest, generator, validation <- pipeline <- evaluation <- app (docs/architecture.md).

Every import statement of every module is read (also those inside functions and under TYPE_CHECKING: a
dependency is a dependency), and a module importing a package above its own, or a sibling of its own
level, fails, naming both.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = {"pipeline.types", "pipeline.text", "pipeline.words", "pipeline.errors", "pipeline.config",
        "pipeline.device", "pipeline.plugins", "pipeline.embedding", "pipeline.spawn"}
LEVEL = {"core": 0, "ingest": 1, "generator": 1, "validation": 1, "pipeline": 2, "evaluation": 3, "app": 4}
# The exceptions, and why: the sculpt model's trainer (offline; the runtime never imports it) mines hard
# distractors for its training examples with the pipeline's BM25 index, asks its questions about documents of
# the chunks ingest makes of them (a training passage is what retrieval serves), reads RGB as the rgb
# evaluation set does, and keeps the documents the business_docs evaluation set is about out of its training.
EXCEPTIONS = {("generator.sculpt.training.data", "pipeline.lexical"), ("generator.sculpt.training.data", "ingest.process"),
              ("generator.sculpt.training.data", "evaluation.datasets")}


def layer(module: str) -> str | None:
    if module in CORE or any(module.startswith(c + ".") for c in CORE):
        return "core"
    top = module.split(".")[0]
    return top if top in LEVEL else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.extend((node.lineno, f"{target}.{a.name}" if is_module(f"{target}.{a.name}") else target)
                       for a in node.names)  # `from pipeline import text` imports the module pipeline.text
    return out


def violations() -> list[str]:
    found = []
    for package in LEVEL:
        for path in sorted((ROOT / package).rglob("*.py")) if package != "core" else ():
            src = module_name(path)
            src_layer = layer(src)
            for line, target in imports(path):
                dst_layer = layer(target)
                if dst_layer is None or dst_layer == src_layer:
                    continue
                if (src, target) in EXCEPTIONS:
                    continue
                if LEVEL[dst_layer] >= LEVEL[src_layer]:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {src} ({src_layer}) imports {target} ({dst_layer})")
    return found


def test_no_package_imports_one_above_it() -> None:
    found = violations()
    assert not found, "imports against the layers (docs/architecture.md):\n" + "\n".join(found)


def test_the_core_imports_nothing_of_the_project_but_itself() -> None:
    for name in CORE:
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            continue
        for line, target in imports(path):
            top = target.split(".")[0]
            assert top not in LEVEL or layer(target) == "core", f"{name}:{line} imports {target}"


def test_the_checker_sees_a_violation() -> None:
    """The walk itself: a middle package importing the pipeline, and a relative import, are found."""
    assert layer("pipeline.rag") == "pipeline" and layer("pipeline.types") == "core" and layer("numpy") is None
    sample = ROOT / "validation" / "validate.py"
    assert any(t == "pipeline.types" for _, t in imports(sample))
    assert LEVEL[layer("pipeline.rag")] > LEVEL[layer(module_name(sample))]
