"""Training batches paired with held-out comparison batches (docs/method.md §11, "held_out").

Under ``GARModel(clean_comparison="held_out")`` every element ``fit`` reads is a pair
``{"train": batch, "comparison": batch}``: the model steps its optimizer on the training
batch only, and the held-out batch gives the comparison gradient of that step's rewards.
:func:`with_comparison` builds such a dataset; :func:`split_pair` is how the model reads it.
"""

from __future__ import annotations

import tensorflow as tf

TRAIN, COMPARISON = "train", "comparison"  # the keys of one paired element


def with_comparison(train: tf.data.Dataset, comparison: tf.data.Dataset) -> tf.data.Dataset:
    """Pairs each batch of ``train`` with the next batch of ``comparison``, round-robin.

    ``comparison`` is repeated (a shuffled dataset reshuffles on each pass), so one epoch
    is one pass over ``train``. Both must be batched; each element of either is what
    Keras' ``fit`` takes (``(x, y)`` or ``(x, y, sample_weight)``; the training batch may
    also carry ``actions``, as ``SplitSampler.dataset()`` yields).
    """
    for name, data in (("train", train), ("comparison", comparison)):
        if not isinstance(data, tf.data.Dataset):
            raise TypeError(
                f"with_comparison needs batched tf.data.Datasets; {name} is "
                f"{type(data).__name__}. Build one with "
                "tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)."
            )
    pairs = tf.data.Dataset.zip(train, comparison.repeat())
    return pairs.map(lambda t, c: {TRAIN: t, COMPARISON: c})


def is_pair(data) -> bool:
    """Whether ``data`` is one element of :func:`with_comparison`."""
    return isinstance(data, dict) and set(data) == {TRAIN, COMPARISON}


def split_pair(data, held_out: bool):
    """``(training element, comparison element or None)``; a pair exactly when ``held_out``."""
    if held_out and not is_pair(data):
        raise ValueError(
            'clean_comparison="held_out" trains on batches paired with held-out comparison '
            "batches: fit on gar_tf.with_comparison(train_batches, held_out_batches) "
            "(gar_tf.datasets.held_out_split carves a stratified held-out share)."
        )
    if not held_out and is_pair(data):
        raise ValueError(
            "This batch pairs training and comparison batches (gar_tf.with_comparison); "
            'that needs GARModel(clean_comparison="held_out").'
        )
    return (data[TRAIN], data[COMPARISON]) if held_out else (data, None)
