"""One Dense layer's reward, tangent form against Gram form, at the MLP's shapes.

Tangent: ``r = rowsum(delta * (x @ V))`` (2 in out FLOPs per example). Gram:
``r = rowsum((x @ x'^T) * (delta @ delta'^T))`` (2 B' (in + out) per example; docs/method.md
§12). Median of ``--calls`` compiled calls of each, beside the layer's forward matmul, on the
layer shapes of ``benchmarks/overhead.py``'s MLP. Pin it for one-core figures, e.g.
``TF_NUM_INTRAOP_THREADS=1 taskset -c 0 python benchmarks/dense_reward_forms.py``.
"""

import argparse
import time

LAYERS = ((784, 1024), (1024, 1024), (1024, 10))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=256, help="B and B' of the two batches")
    parser.add_argument("--calls", type=int, default=30, help="timed calls of each form")
    args = parser.parse_args(argv)
    for flag in ("batch_size", "calls"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    return args


def median_ms(fn, *args, calls: int) -> float:
    fn(*args)  # trace
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(*args).numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[calls // 2]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import tensorflow as tf  # after the flags: --help stays fast

    @tf.function
    def forward(x, w):
        return tf.matmul(x, w)

    @tf.function
    def tangent(x, delta, v):
        return tf.reduce_sum(delta * tf.matmul(x, v), axis=1)

    @tf.function
    def gram(x, delta, other_x, other_delta):
        products = tf.matmul(x, other_x, transpose_b=True) * tf.matmul(
            delta, other_delta, transpose_b=True
        )
        return tf.reduce_sum(products, axis=1)

    batch, calls = args.batch_size, args.calls
    print(f"batch {batch}, median ms of {calls} calls")
    print("| layer | forward x @ W | tangent | Gram |")
    print("|---|---:|---:|---:|")
    for fan_in, fan_out in LAYERS:
        x, other_x = tf.random.normal([batch, fan_in]), tf.random.normal([batch, fan_in])
        delta = tf.random.normal([batch, fan_out])
        other_delta = tf.random.normal([batch, fan_out])
        v = tf.random.normal([fan_in, fan_out])
        print(
            f"| {fan_in}->{fan_out} | {median_ms(forward, x, v, calls=calls):.2f} "
            f"| {median_ms(tangent, x, delta, v, calls=calls):.2f} "
            f"| {median_ms(gram, x, delta, other_x, other_delta, calls=calls):.2f} |"
        )


if __name__ == "__main__":
    main()
