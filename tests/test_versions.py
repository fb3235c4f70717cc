"""The running TensorFlow and Keras lie inside the tested range that setup.py declares.

setup.py pins an upper bound for each (the first release series that `tox -e highest` has not
run); this test turns an environment outside that range (a forced install, a new release pulled
in by something else) into one clear failure instead of scattered API errors.
"""

import importlib
import importlib.metadata

import pytest

packaging_requirements = pytest.importorskip("packaging.requirements")
packaging_utils = pytest.importorskip("packaging.utils")
packaging_version = pytest.importorskip("packaging.version")

DISTRIBUTION = "gar-tf"
CHECKED = ("tensorflow", "keras")


def _declared_requirements():
    """gar-tf's unconditional requirements, by canonical name, from the installed metadata."""
    try:
        requires = importlib.metadata.requires(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"{DISTRIBUTION} is not installed, so there is no declared range to read "
            '(install it, e.g. pip install ".[test]", as scripts/test.sh and tox do)'
        )
    out = {}
    for line in requires or []:
        req = packaging_requirements.Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        out[packaging_utils.canonicalize_name(req.name)] = req
    return out


def _range(specifier):
    """'>=2.16,<2.22': lower bounds first, as written in setup.py (str() sorts '<' first)."""
    return ",".join(sorted((str(s) for s in specifier), key=lambda s: s.startswith("<")))


@pytest.mark.parametrize("name", CHECKED)
def test_declared_range_has_both_bounds(name):
    req = _declared_requirements().get(name)
    assert req is not None, f"setup.py does not declare {name} in install_requires"
    operators = {spec.operator for spec in req.specifier}
    assert operators & {">=", ">", "=="}, f"{name}{_range(req.specifier)} has no lower bound"
    assert operators & {"<", "<=", "=="}, (
        f"{name}{_range(req.specifier)} has no upper bound: pin the first untested release series"
    )


@pytest.mark.parametrize("name", CHECKED)
def test_running_version_is_in_declared_range(name):
    req = _declared_requirements().get(name)
    if req is None:
        pytest.fail(f"setup.py does not declare {name} in install_requires")
    # The imported module's version, not a distribution's: TensorFlow may come as tensorflow-cpu.
    running = importlib.import_module(name).__version__
    assert req.specifier.contains(packaging_version.Version(running), prereleases=True), (
        f"{name} {running} is outside the tested range {_range(req.specifier)} declared in setup.py"
    )
