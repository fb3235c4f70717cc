"""Each folder of saved_policies/ is what its command.txt produces with the current code.

The command is run again (one thread per op, as when the folder was made: the float sums,
and so the learned policy, depend on the thread count) and its export compared with the
policy that command produced on the same CPU model and instruction set: float kernels differ
between CPUs, and the noise-driven policy (lr 0.1) magnifies those differences into a
different policy. ``reproductions.json`` maps each CPU seen to that policy (``policy.json``
for the one that made the folder). On any CPU the export must have the committed config and
be a learned policy; the committed SavedModel must serve ``policy.json``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gar_tf_trainers import _machine

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p for p in (ROOT / "saved_policies").iterdir() if p.is_dir())
PREFIX = ["python", "-m", "gar_tf_trainers.augment_search"]


def _distributions(summary: dict) -> tuple[np.ndarray, np.ndarray]:
    ops = summary["ops"].values()
    return (
        np.array([op["probability"] for op in ops]),
        np.array([op["level_distribution"] for op in ops]),
    )


def _total_variation_from_uniform(ops: np.ndarray) -> float:
    return float(0.5 * np.abs(ops - 1 / len(ops)).sum())


@pytest.fixture(scope="module", params=FOLDERS, ids=[p.name for p in FOLDERS])
def rerun(request, tmp_path_factory):
    """(folder, the policy.json its command.txt exports here)."""
    folder = request.param
    command = shlex.split((folder / "command.txt").read_text())
    assert command[:3] == PREFIX, command
    out = tmp_path_factory.mktemp(folder.name)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gar_tf_trainers.augment_search", *command[3:]]
        + ["--logdir", str(out), "--export-dir", str(out / "policy")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, json.loads((out / "policy" / "policy.json").read_text())


def test_command_exports_a_learned_policy_with_the_committed_config(rerun):
    folder, produced = rerun
    committed = json.loads((folder / "policy.json").read_text())
    assert produced["config"] == committed["config"]
    # The README's main job shows a learned policy: its op distribution is away from uniform,
    # on every CPU, and so is the committed one.
    assert _total_variation_from_uniform(_distributions(produced)[0]) >= 0.2
    assert _total_variation_from_uniform(_distributions(committed)[0]) >= 0.2


def test_command_reproduces_the_policy_recorded_for_this_cpu(rerun):
    folder, produced = rerun
    reproductions = json.loads((folder / "reproductions.json").read_text())
    cpu = _machine.cpu()
    if cpu not in reproductions:
        pytest.skip(
            f"no policy recorded for {cpu!r} in {folder.name}/reproductions.json (recorded: "
            f"{sorted(reproductions)}); to add one, run command.txt with one thread per op "
            "and commit its policy.json under reproduced_on/"
        )
    recorded = json.loads((folder / reproductions[cpu]).read_text())
    for mine, theirs in zip(_distributions(produced), _distributions(recorded)):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_committed_saved_model_serves_its_policy_json(folder):
    import tensorflow as tf

    module = tf.saved_model.load(str(folder))  # kept: its variables back the function
    served = module.distributions()
    ops, levels = _distributions(json.loads((folder / "policy.json").read_text()))
    np.testing.assert_allclose(served["ops"].numpy(), ops, atol=1e-6)
    np.testing.assert_allclose(served["levels"].numpy(), levels, atol=1e-6)
