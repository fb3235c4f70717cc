"""Each folder of saved_policies/ is what its command.txt produces with the current code.

The command is run again (one thread per op, as when the folder was made: the float sums,
and so the learned policy, depend on the thread count) and its export compared with the
committed policy.json; the committed SavedModel must serve the same distributions.
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

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p for p in (ROOT / "saved_policies").iterdir() if p.is_dir())
PREFIX = ["python", "-m", "gar_tf_trainers.augment_search"]


def _distributions(summary: dict) -> tuple[np.ndarray, np.ndarray]:
    ops = summary["ops"].values()
    return (
        np.array([op["probability"] for op in ops]),
        np.array([op["level_distribution"] for op in ops]),
    )


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_saved_policy_is_what_its_command_produces(folder, tmp_path):
    command = shlex.split((folder / "command.txt").read_text())
    assert command[:3] == PREFIX, command
    out = tmp_path / "run"
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
    committed = json.loads((folder / "policy.json").read_text())
    produced = json.loads((out / "policy" / "policy.json").read_text())
    assert produced["config"] == committed["config"]
    for mine, theirs in zip(_distributions(produced), _distributions(committed)):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    # The README's main job shows a learned policy: its op distribution is away from uniform.
    ops, _ = _distributions(committed)
    assert 0.5 * np.abs(ops - 1 / len(ops)).sum() >= 0.2


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_committed_saved_model_serves_its_policy_json(folder):
    import tensorflow as tf

    module = tf.saved_model.load(str(folder))  # kept: its variables back the function
    served = module.distributions()
    ops, levels = _distributions(json.loads((folder / "policy.json").read_text()))
    np.testing.assert_allclose(served["ops"].numpy(), ops, atol=1e-6)
    np.testing.assert_allclose(served["levels"].numpy(), levels, atol=1e-6)
