"""The README's Python blocks run as written, in order, in one session."""

import re
from pathlib import Path

import pytest
import tensorflow as tf

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 4, "a README Python block was added or removed: check it here"
    monkeypatch.chdir(tmp_path)  # the blocks write under runs/
    namespace: dict = {}
    outputs = []
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md Python block {number}", "exec"), namespace)
        outputs.append(capsys.readouterr().out)

    assert "(64,)" in outputs[0]
    probabilities = namespace["sampler"].probabilities()
    assert probabilities["scraped"] < 0.2 < min(probabilities["clean"], probabilities["other"])
    assert (tmp_path / "runs/mix/probabilities.png").is_file()
    assert "\nn[1:" in outputs[2]  # the policy string
    exported = tf.saved_model.load(str(tmp_path / "runs/my_policy"))
    images = exported.augment(tf.zeros([2, 28, 28, 1], tf.uint8), 0)
    assert images.shape == (2, 28, 28, 1)
    assert "(8,)" in outputs[3]
    assert namespace["r"].numpy().sum() == pytest.approx(_brute_force_sum(namespace), rel=1e-5)


def _brute_force_sum(ns: dict) -> float:
    """<grad of the mean loss, direction> from a plain tape: what the rule's rewards sum to."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(ns["loss_fn"](ns["ys"], ns["mlp"](ns["xs"], training=True)))
    (grad,) = tape.gradient(loss, ns["mlp"].trainable_variables)
    return float(tf.reduce_sum(grad * ns["direction"][0]))
