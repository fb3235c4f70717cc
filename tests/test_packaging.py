"""What `pip install gar-tf` and its sdist carry: the licence, the requirements, the test files."""

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# Import name of each requirement whose distribution name differs from it.
IMPORT_NAMES = {"tensorflow-datasets": "tensorflow_datasets"}


def _setup_keyword(name: str):
    """The literal value of keyword `name` in setup.py's `setup(...)` call."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.id == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == name))


def test_licence_file_is_the_declared_licence() -> None:
    assert _setup_keyword("license") == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_every_requirement_is_imported() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "gar_tf").rglob("*.py"))
    unused = []
    for requirement in _setup_keyword("install_requires"):
        dist = re.match(r"[A-Za-z0-9_.-]+", requirement).group()
        module = IMPORT_NAMES.get(dist, dist)
        if module == "importlib_resources":
            # Not ours: tensorflow-datasets imports it but declares it only for Python < 3.9.
            builder = importlib.util.find_spec("tensorflow_datasets.core.dataset_builder").origin
            if "import importlib_resources" not in Path(builder).read_text():
                unused.append(f"{dist} (tensorflow-datasets no longer imports it)")
        elif not re.search(rf"^\s*(import|from) {module}\b", sources, flags=re.M):
            unused.append(dist)
    assert not unused, f"install_requires names packages gar_tf does not import: {unused}"


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools")
def test_sdist_carries_every_file_the_tests_read(tmp_path: Path) -> None:
    # Built from a copy without egg-info: setuptools adds the files an old SOURCES.txt lists.
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".*", "build", "dist", "runs", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        carried = {Path(*Path(name).parts[1:]) for name in tar.getnames()}
    wanted = {Path(p) for p in ("LICENSE", "README.md", "setup.py", "tox.ini", "pyproject.toml")}
    for folder, pattern in [("tests", "*.py"), ("docs", "*.md"), ("gar_tf_trainers", "*.py")]:
        wanted |= {p.relative_to(ROOT) for p in (ROOT / folder).rglob(pattern)}
    wanted |= {p.relative_to(ROOT) for p in (ROOT / "benchmarks").glob("*.py")}
    wanted |= {p.relative_to(ROOT) for p in (ROOT / "saved_policies").rglob("*") if p.is_file()}
    missing = sorted(str(p) for p in wanted - carried if "__pycache__" not in p.parts)
    assert not missing, f"the sdist lacks {missing}: add them to MANIFEST.in"


def test_every_trainer_is_a_command_after_install() -> None:
    from gar_tf_trainers import _commands

    commands = _setup_keyword("entry_points")["console_scripts"]
    trainers = sorted(p.stem for p in (ROOT / "gar_tf_trainers").glob("[!_]*.py"))
    assert sorted(c.split(":")[-1] for c in commands) == trainers
    for command in commands:
        name, target = (part.strip() for part in command.split("="))
        assert name == "gar-tf-" + target.split(":")[1].replace("_", "-")
        assert target.split(":")[0] == "gar_tf_trainers._commands"
        assert callable(getattr(_commands, target.split(":")[1]))
        installed = Path(sys.executable).parent / name
        if installed.exists():  # pip installed the package into this environment
            done = subprocess.run([installed, "--help"], capture_output=True, text=True)
            assert done.returncode == 0 and "usage: " in done.stdout, done.stderr
