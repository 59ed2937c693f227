"""The import rules that keep the folders meaningful, read from every module's `import` statements (`ast`).

- only gen/domains/ imports a world's own modules (gen.domains.shapes); generic code goes through the
  Domain protocol that gen.domains exports;
- gen/training/ imports no model code: the loop takes a task, it does not know the generator or captioner;
- gen never imports caption; caption never imports gen/generator/ (best-of-N reaches the judge through the
  scorer protocol in gen/generator/rerank.py, found by entry point; the demo runs `python -m gen`);
- library code never imports a CLI module (gen/core/cli.py, either `__main__`): errors live in gen/core/errors.py;
- caption/ reaches gen/ only through gen.core, gen.training, gen.data and the names gen.domains exports.

Imports inside functions count as much as those at the top: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI_MODULES = {"gen.__main__", "caption.__main__", "gen.core.cli"}
CAPTION_MAY_USE = ("gen.core", "gen.training", "gen.data")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> list[tuple[list[str], int]]:
    """Per import statement, the absolute modules it may load and its line; `from pkg import name` may load
    pkg.name too, since the name can be a module."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [([alias.name], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(([module, *(f"{module}.{alias.name}" for alias in node.names)], node.lineno))
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(root: Path) -> list[str]:
    """Every import in gen/ and caption/ under `root` that breaks a rule, as 'file:line: rule'."""
    problems = []
    for path in sorted([*root.glob("gen/**/*.py"), *root.glob("caption/**/*.py")]):
        here = module_name(path, root)
        where = f"{path.relative_to(root)}"
        for modules, line in imported(path, root):
            broken = [rule for module in modules for rule in _rules_broken(here, module, root)]
            problems += [f"{where}:{line}: {rule}" for rule in dict.fromkeys(broken)]
    return sorted(problems)


def _rules_broken(here: str, module: str, root: Path) -> list[str]:
    """The rules that module `here` breaks by importing `module` (the general caption rule only when no
    more specific one already names the import)."""
    broken = []
    if _under(module, "gen.domains.shapes") and not _under(here, "gen.domains"):
        broken.append("only gen/domains/ imports gen.domains.shapes")
    if _under(here, "gen.training") and (_under(module, "gen.generator") or _under(module, "caption")):
        broken.append("gen/training/ imports no model code")
    if _under(here, "gen") and _under(module, "caption"):
        broken.append("gen never imports caption")
    if _under(here, "caption") and _under(module, "gen.generator"):
        broken.append("caption never imports gen/generator/")
    if module in CLI_MODULES and here not in CLI_MODULES:
        broken.append("library code never imports a CLI module")
    if not broken and _under(here, "caption") and _under(module, "gen") and not _caption_may_use(module, root):
        broken.append("caption reaches gen only through gen.core, gen.training, gen.data, gen.domains")
    return broken


def _caption_may_use(module: str, root: Path) -> bool:
    if module in ("gen", "gen.domains") or any(_under(module, p) for p in CAPTION_MAY_USE):
        return True
    package, _, name = module.rpartition(".")
    return package == "gen.domains" and name in _exported(package, root)


def _exported(package: str, root: Path) -> set[str]:
    """The names a package's __init__ lists in __all__."""
    init = root / package.replace(".", "/") / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return {ast.literal_eval(e) for e in node.value.elts}
    return set()


def test_the_tree_keeps_every_import_rule():
    assert violations(ROOT) == []


@pytest.mark.parametrize("file, source, rule", [
    ("caption/evaluation/x.py", "from gen.domains.shapes.world import render\n", "only gen/domains/ imports"),
    ("gen/evaluate/x.py", "def f():\n    from gen.domains.shapes import world\n", "only gen/domains/ imports"),
    ("gen/training/x.py", "from gen.generator.pipeline import TextToImagePipeline\n", "imports no model code"),
    ("gen/generator/x.py", "def f():\n    from caption.judge.scorer import JudgeScorer\n", "gen never imports caption"),
    ("caption/x.py", "from gen.generator import sample\n", "caption never imports gen/generator/"),
    ("gen/data/x.py", "from gen.core.cli import run_cli\n", "never imports a CLI module"),
    ("gen/data/y.py", "from ..core import cli\n", "never imports a CLI module"),
    ("caption/y.py", "from gen.evaluate.real import label_of\n", "caption reaches gen only through"),
    ("caption/z.py", "from gen.domains.registry import get\n", "caption reaches gen only through"),
])
def test_a_deliberate_violation_is_reported(tmp_path, file, source, rule):
    for package in ("gen", "gen/domains", "caption"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
    (tmp_path / "gen/domains/__init__.py").write_text('__all__ = ["get", "Domain"]\n')
    target = tmp_path / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and rule in found[0] and found[0].startswith(file), found


def test_allowed_imports_are_not_reported(tmp_path):
    (tmp_path / "gen/domains").mkdir(parents=True)
    (tmp_path / "gen/domains/__init__.py").write_text('__all__ = ["get", "Domain"]\n')
    (tmp_path / "gen/domains/shapes").mkdir()
    (tmp_path / "gen/domains/shapes/__init__.py").write_text("from gen.domains.shapes import world\n")
    (tmp_path / "caption").mkdir()
    (tmp_path / "caption/a.py").write_text("from gen.core.errors import UserError\nfrom gen.domains import get\n"
                                           "from gen import domains\nfrom gen.data import SkipLog\n")
    (tmp_path / "caption/__main__.py").write_text("from gen.core.cli import run_cli\n")
    assert violations(tmp_path) == []
