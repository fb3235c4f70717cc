"""Cross-replica helpers: identity without a strategy; sums and a conditional optimizer step
under a 2-replica MirroredStrategy (in a subprocess: logical devices are set before TF starts)."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from gar_tf import replicas


def test_without_a_strategy_everything_is_local():
    assert replicas.num_replicas() == 1 and int(replicas.replica_id()) == 0
    t = [tf.constant([1.0, 2.0])]
    assert replicas.all_reduce_sum(t)[0] is t[0]
    v = keras.Variable(np.zeros(2, np.float32))
    optimizer = keras.optimizers.SGD(1.0)
    optimizer.build([v])
    replicas.apply_if(tf.constant(False), optimizer, [tf.ones(2)], [v])
    np.testing.assert_array_equal(v.numpy(), [0, 0])
    replicas.apply_if(tf.constant(True), optimizer, [tf.ones(2)], [v])
    np.testing.assert_array_equal(v.numpy(), [-1, -1])


SCRIPT = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from gar_tf import replicas
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        v = keras.Variable(np.zeros(2, np.float32))
        optimizer = keras.optimizers.SGD(1.0)
        optimizer.build([v])

    @tf.function
    def step(condition):
        def replica():
            i = tf.cast(replicas.replica_id(), tf.float32)
            (total,) = replicas.all_reduce_sum([tf.stack([i, 1.0])])
            replicas.apply_if(condition, optimizer, [total], [v])
            return total
        return strategy.run(replica)

    totals = strategy.experimental_local_results(step(tf.constant(True)))
    print("TOTALS", [t.numpy().tolist() for t in totals], replicas.num_replicas())
    step(tf.constant(False))
    print("V", v.numpy().tolist())
    """
)


def test_under_two_replicas_sums_are_global_and_the_step_is_applied_once():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["TOTALS"] == "[[1.0, 2.0], [1.0, 2.0]] 1"  # outside the scope: 1 replica
    assert lines["V"] == "[-1.0, -2.0]"  # the summed gradient, applied once (not per replica)
