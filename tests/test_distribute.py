"""GAR under tf.distribute: 2 replicas x 64 equal 1 x 128; two workers' ``model.fit`` end
identical, equal to one process.

Each configuration runs in its own process (tests/distributed_run.py), because logical
devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("distributed_run.py")
TIMEOUT = 300  # seconds per process (per pair of workers); a shared 2-core machine is slow


def _start(mode: str, env: dict | None = None, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, "3", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _result(process: subprocess.Popen, timeout: float = TIMEOUT) -> dict:
    try:
        out, _ = process.communicate(timeout=max(timeout, 1))
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


def test_materialised_path_two_mirrored_replicas_match_one_replica_tangent(one_replica):
    two = _result(_start("mirrored", {"GAR_TF_TEST_PATHS": "materialised"}))
    for a, b in zip(_rewards_by_step(one_replica), _rewards_by_step(two)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(two["logits"], one_replica["logits"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(two["kernel"], one_replica["kernel"], rtol=1e-5, atol=1e-7)


def test_evidence_rule_statistics_are_global():
    """The evidence rule's per-split sums are summed over replicas: 2 x 64 == 1 x 128."""
    one = _result(_start("one", None, "split-evidence"))
    two = _result(_start("mirrored", None, "split-evidence"))
    assert two["replicas"] == 2 and one["policy_steps"] == two["policy_steps"] == 0
    assert one["statistics"][0] and sum(one["statistics"][0]) > 128  # two steps counted
    for a, b in zip(one["statistics"], two["statistics"]):  # sums of 128 standardised rewards
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(two["logits"], one["logits"], rtol=1e-4, atol=1e-4)
    assert np.any(np.abs(one["logits"]) > 1e-3), "the evidence rule did not move at all"


def test_evidence_op_rule_statistics_are_global():
    """AugmentationPolicy(op_rule="evidence") under 2 replicas: each op's count sums both
    replicas' images (one op per image: 128 per rewarded step, 2 of 3 steps rewarded)."""
    two = _result(_start("mirrored", None, "augment-evidence"))
    assert two["replicas"] == 2
    count = np.array(two["op_statistics"][0])  # evidence.STATISTICS[0]: the count
    assert count.sum() == pytest.approx(2 * 128, rel=1e-6)
    assert np.any(np.abs(np.array(two["op_logits"])) > 1e-3), "the ops did not move at all"


@pytest.mark.parametrize("comparison, steps", [("held-out", 3), ("other-splits", 2)])
def test_comparisons_two_mirrored_replicas_match_one_replica(comparison, steps):
    """Held-out comparison: G is the global held-out gradient, every step is rewarded. Other
    splits: each split's direction averages the global batch's other splits."""
    policy = f"split-{comparison}"
    one, two = (_result(_start(mode, None, policy)) for mode in ("one", "mirrored"))
    assert one["policy_steps"] == two["policy_steps"] == steps
    one_rewards, two_rewards = _rewards_by_step(one), _rewards_by_step(two)
    assert len(one_rewards) == len(two_rewards) == steps
    for a, b in zip(one_rewards, two_rewards):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(two["logits"], one["logits"], rtol=1e-5, atol=1e-8)
    assert np.any(np.abs(one["logits"]) > 1e-3), "the policy did not move at all"
    np.testing.assert_allclose(two["kernel"], one["kernel"], rtol=1e-5, atol=1e-7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(*args: str) -> list[dict]:
    """Results of two MultiWorkerMirroredStrategy workers on 127.0.0.1 (``TF_CONFIG``), each
    running ``model.fit``; both killed by the deadline, or as soon as one fails."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    deadline = time.monotonic() + TIMEOUT
    workers = []
    try:
        for i in range(2):
            task = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            workers.append(_start("multiworker", {"TF_CONFIG": json.dumps(task)}, *args))
        return [_result(w, deadline - time.monotonic()) for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait()


def _flat(result: dict, key: str) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(w, np.float64)) for w in result[key]])


def _assert_identical_workers_equal_to(results: list[dict], reference: dict) -> None:
    assert [r["replicas"] for r in results] == [2, 2]
    for key in ("policy", "model"):
        assert results[0][key] == results[1][key], f"the workers' {key} variables differ"
        difference = np.max(np.abs(_flat(results[0], key) - _flat(reference, key)))
        print(f"max |worker - one process| of the {key} variables: {difference:.3g}")
        np.testing.assert_allclose(
            _flat(results[0], key), _flat(reference, key), rtol=1e-5, atol=1e-7, err_msg=key
        )
    assert results[0]["policy_steps"] == results[1]["policy_steps"] == reference["policy_steps"]
    assert np.any(np.abs(_flat(reference, "policy")) > 1e-3), "the policy did not move at all"


def test_two_workers_fit_with_a_split_sampler_equals_one_process(one_replica):
    results = _workers()
    _assert_identical_workers_equal_to(results, one_replica)
    assert results[0]["policy_steps"] == 2
    for key in ("loss", "accuracy", "reward_mean"):
        np.testing.assert_allclose(
            results[0]["history"][key], one_replica["history"][key], rtol=1e-5, err_msg=key
        )


def test_two_workers_fit_an_augmentation_policy_with_callbacks(tmp_path):
    """2 epochs with BackupAndRestore, ModelCheckpoint (each worker its own files) and
    TensorBoard (chief only). The reference is one process with the same 2 replicas
    (MirroredStrategy): AugmentationPolicy draws one stream per replica."""
    mirrored = _result(_start("mirrored", None, "augment", str(tmp_path / "mirrored")))
    results = _workers("augment", str(tmp_path / "cluster"))
    _assert_identical_workers_equal_to(results, mirrored)
    assert results[0]["policy_steps"] == 5  # 2 epochs x 3 steps, the first without reward
    assert [r["chief"] for r in results] == [True, False]
    cluster = tmp_path / "cluster"
    assert list((cluster / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list((cluster / "worker_1").rglob("events.out.tfevents.*"))
    assert (cluster / "ckpt" / "model.weights.h5").is_file()
    assert (cluster / "ckpt" / "worker_1" / "model.weights.h5").is_file()
    assert not (cluster / "backup").exists(), "BackupAndRestore keeps no backup after fit"
