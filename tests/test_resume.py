"""Kill and resume: a GAR fit SIGKILLed mid-epoch and resumed by BackupAndRestore ends
exactly where the uninterrupted fit ends (policy, policy optimizer, model).

The state that makes this hold: policy weights and its optimizer's slots, the policy's
RNG stream (``rng_state``) and the pending batch-t state (one reward would be lost
without it) are in the model's checkpoint. Runs are subprocesses (tests/resume_run.py).
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("resume_run.py")


def _run(backup: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(backup), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _result(done: subprocess.CompletedProcess) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("mode", [[], ["--held-out"]], ids=["next", "held_out"])
def test_killed_and_resumed_fit_ends_like_the_uninterrupted_one(tmp_path, mode):
    uninterrupted = _result(_run(tmp_path / "a", *mode))
    killed = _run(tmp_path / "b", "--kill-at", "1", "2", *mode)  # epoch 1, batch 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "b" / "latest.weights.h5").exists()
    resumed = _result(_run(tmp_path / "b", *mode))
    assert resumed["steps"] == uninterrupted["steps"] == 12
    for key in ("policy", "policy_optimizer", "model"):
        assert len(resumed[key]) == len(uninterrupted[key])
        for a, b in zip(resumed[key], uninterrupted[key]):
            np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=key)
    assert not (tmp_path / "b").exists(), "BackupAndRestore deletes its backup at the end"
