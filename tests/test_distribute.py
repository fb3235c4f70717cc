"""GAR under tf.distribute: 2 replicas x 64 equal 1 x 128; two workers end identical.

Each configuration runs in its own process (tests/distributed_run.py), because logical
devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("distributed_run.py")
TIMEOUT = 240


def _start(mode: str, env: dict | None = None, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, "3", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _result(process: subprocess.Popen) -> dict:
    try:
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, out[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def one_replica() -> dict:
    return _result(_start("one"))


def _rewards_by_step(result: dict) -> list[np.ndarray]:
    """Each policy step's rewards over the global batch, replica 0's examples first."""
    by_replica: dict[int, list] = {}
    for replica, rewards, _ in result["recorded"]:
        by_replica.setdefault(replica, []).append(rewards)
    steps = zip(*(by_replica[r] for r in sorted(by_replica)))
    return [np.concatenate(parts) for parts in steps]


def test_two_mirrored_replicas_match_one_replica(one_replica):
    two = _result(_start("mirrored"))
    assert (one_replica["replicas"], two["replicas"]) == (1, 2)
    assert one_replica["policy_steps"] == two["policy_steps"] == 2
    one_rewards, two_rewards = _rewards_by_step(one_replica), _rewards_by_step(two)
    assert len(one_rewards) == len(two_rewards) == 2
    for a, b in zip(one_rewards, two_rewards):
        assert a.shape == b.shape == (128,)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(two["logits"], one_replica["logits"], rtol=1e-5, atol=1e-8)
    assert np.any(np.abs(one_replica["logits"]) > 1e-3), "the policy did not move at all"
    np.testing.assert_allclose(two["kernel"], one_replica["kernel"], rtol=1e-5, atol=1e-7)


def test_held_out_two_mirrored_replicas_match_one_replica():
    """Held-out comparison: G is the global held-out gradient, every step is rewarded."""
    one, two = (_result(_start(mode, None, "held_out")) for mode in ("one", "mirrored"))
    assert one["policy_steps"] == two["policy_steps"] == 3
    one_rewards, two_rewards = _rewards_by_step(one), _rewards_by_step(two)
    assert len(one_rewards) == len(two_rewards) == 3
    for a, b in zip(one_rewards, two_rewards):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(two["logits"], one["logits"], rtol=1e-5, atol=1e-8)
    assert np.any(np.abs(one["logits"]) > 1e-3), "the policy did not move at all"
    np.testing.assert_allclose(two["kernel"], one["kernel"], rtol=1e-5, atol=1e-7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_end_with_identical_policies(one_replica):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    workers = [
        _start(
            "multiworker",
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    ]
    try:
        results = [_result(w) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["logits"] == results[1]["logits"]
    assert results[0]["kernel"] == results[1]["kernel"]
    assert results[0]["policy_steps"] == 2
    np.testing.assert_allclose(results[0]["logits"], one_replica["logits"], rtol=1e-5, atol=1e-8)
