"""Table-driven image augmentation with a different op and level per image (docs/method.md §6).

``apply_ops(images, op_ids, levels, space="wide")`` applies op ``op_ids[i]`` at
``levels[i]`` to image i, grouping the batch by op so that each op runs once.
Ops follow PIL's semantics; docs/augmentation.md has the op table and the deviations.
``gar_tf.augment.baselines`` holds fixed policies on these ops (crop/flip, RandAugment,
TrivialAugment-Wide, UniformAugment) for comparisons.
"""

from gar_tf.augment import baselines
from gar_tf.augment.apply import apply_ops
from gar_tf.augment.hooks import OpFn, layer_op
from gar_tf.augment.table import (
    SPACES,
    Magnitude,
    Op,
    Space,
    build_space,
    get_op,
    get_space,
    register_op,
    space_ops,
)

__all__ = [
    "SPACES",
    "Magnitude",
    "Op",
    "OpFn",
    "Space",
    "apply_ops",
    "baselines",
    "build_space",
    "get_op",
    "get_space",
    "layer_op",
    "register_op",
    "space_ops",
]
