"""The op table: registered ops, level → magnitude maps, named search spaces (docs/method.md §6).

With L = num_levels − 1 (PARAMETER_MAX, 30 by default), level l ∈ {0..L} maps to
float_param(l, m) = l·m/L or int_param(l, m) = int(l·m/L), shifted by an offset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gar_tf.augment import geometry, ops
from gar_tf.augment.hooks import OpFn


@dataclasses.dataclass(frozen=True)
class Magnitude:
    """Level l ↦ ``offset + span·l/L``, truncated towards 0 (int_param) if ``integer``.

    ``signed`` ops get a random ± per image (not a policy action, docs/method.md §6).
    The default maps every level to 0: the op ignores its level.
    """

    span: float = 0.0
    offset: float = 0.0
    integer: bool = False
    signed: bool = False

    def values(self, num_levels: int) -> np.ndarray:
        """The magnitudes of levels 0..num_levels − 1, float32 ``[num_levels]``."""
        top = max(num_levels - 1, 1)
        params = [level * self.span / top for level in range(num_levels)]
        if self.integer:
            params = [float(int(p)) for p in params]
        return np.array([self.offset + p for p in params], np.float32)


@dataclasses.dataclass(frozen=True)
class Op:
    """A named op ``fn`` with its level → magnitude map."""

    name: str
    fn: OpFn
    magnitude: Magnitude = Magnitude()


@dataclasses.dataclass(frozen=True)
class Space:
    """An ordered tuple of ops; op id i of ``apply_ops`` means ``ops[i]``."""

    ops: tuple[Op, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)


_REGISTRY: dict[str, Op] = {}


def register_op(
    name: str, fn: OpFn, magnitude: Magnitude = Magnitude(), *, replace: bool = False
) -> Op:
    """Registers ``fn`` under ``name`` with its default level → magnitude map.

    ``fn(images, magnitude, noise) -> images`` works on float32 ``[n, H, W, C]`` in
    [0, 255] (``hooks.OpFn``); ``hooks.layer_op`` makes one from a Keras or keras-cv
    layer. Raises ValueError if ``name`` is taken and not ``replace``.
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"augmentation op {name!r} is already registered; pass replace=True")
    _REGISTRY[name] = Op(name, fn, magnitude)
    return _REGISTRY[name]


def get_op(name: str) -> Op:
    """The registered op ``name``; ValueError listing the registered names if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown augmentation op {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def build_space(ops: Sequence[str | Op | tuple[str, Magnitude]]) -> Space:
    """A space from op names (registered default magnitudes), ``(name, Magnitude)`` or ``Op``s."""
    entries = []
    for entry in ops:
        if isinstance(entry, Op):
            entries.append(entry)
        elif isinstance(entry, str):
            entries.append(get_op(entry))
        else:
            name, magnitude = entry
            entries.append(dataclasses.replace(get_op(name), magnitude=magnitude))
    if not entries:
        raise ValueError("a search space needs at least one op")
    return Space(tuple(entries))


_NONE = Magnitude()
_ENHANCE_WIDE = Magnitude(span=1.99, offset=0.01)
_ENHANCE_STANDARD = Magnitude(span=1.8, offset=0.1)

# name, fn, wide range (the registered default), standard range (None: wide space only).
_TABLE: tuple[tuple[str, OpFn, Magnitude, Magnitude | None], ...] = (
    ("Identity", ops.identity, _NONE, _NONE),
    ("AutoContrast", ops.auto_contrast, _NONE, _NONE),
    ("Equalize", ops.equalize, _NONE, _NONE),
    (
        "Rotate",
        geometry.rotate,
        Magnitude(135, integer=True, signed=True),
        Magnitude(30, integer=True, signed=True),
    ),
    (
        "Solarize",
        ops.solarize,
        Magnitude(-256, 256, integer=True),
        Magnitude(-256, 256, integer=True),
    ),
    ("Color", ops.color, _ENHANCE_WIDE, _ENHANCE_STANDARD),
    (
        "Posterize",
        ops.posterize,
        Magnitude(-6, 8, integer=True),
        Magnitude(-4, 8, integer=True),
    ),
    ("Contrast", ops.contrast, _ENHANCE_WIDE, _ENHANCE_STANDARD),
    ("Brightness", ops.brightness, _ENHANCE_WIDE, _ENHANCE_STANDARD),
    ("Sharpness", ops.sharpness, _ENHANCE_WIDE, _ENHANCE_STANDARD),
    ("ShearX", geometry.shear_x, Magnitude(0.99, signed=True), Magnitude(0.3, signed=True)),
    ("ShearY", geometry.shear_y, Magnitude(0.99, signed=True), Magnitude(0.3, signed=True)),
    (
        "TranslateX",
        geometry.translate_x,
        Magnitude(32, integer=True, signed=True),
        Magnitude(10, integer=True, signed=True),
    ),
    (
        "TranslateY",
        geometry.translate_y,
        Magnitude(32, integer=True, signed=True),
        Magnitude(10, integer=True, signed=True),
    ),
    ("Blur", ops.blur, _NONE, None),
    ("Invert", ops.invert, _NONE, None),
    ("FlipLR", geometry.flip_lr, _NONE, None),
    ("FlipUD", geometry.flip_ud, _NONE, None),
    ("Cutout", geometry.cutout, Magnitude(0.6 * 32, integer=True), None),
)

for _name, _fn, _wide, _ in _TABLE:
    register_op(_name, _fn, _wide)

SPACES: dict[str, Space] = {
    "standard": build_space([(name, std) for name, _, _, std in _TABLE if std is not None]),
    "wide": build_space([(name, wide) for name, _, wide, _ in _TABLE]),
}


def get_space(space: str | Space) -> Space:
    """``space`` itself, or the named space ("standard" or "wide")."""
    if isinstance(space, Space):
        return space
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; named spaces: {sorted(SPACES)}")
    return SPACES[space]


def space_ops(space: str | Space = "wide") -> tuple[str, ...]:
    """The op names of ``space`` in op-id order (Identity first in the named spaces)."""
    return get_space(space).names
