"""gar_tf.augment: each op against PIL, the level table, per-image grouping, graph modes, errors."""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from gar_tf import augment, datasets

try:  # Pillow is a test-only dependency: only the PIL comparisons need it.
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps
except ImportError:
    Image = None
needs_pil = pytest.mark.skipif(Image is None, reason="Pillow is not installed")

WIDE = augment.space_ops("wide")
PIL_OPS = WIDE[:-1]  # all but Cutout, whose PIL rectangle differs on purpose (docs/augmentation.md)
LEVELS = (0, 15, 30)

# Magnitudes at levels 0 / 15 / 30, worked out by hand from the op table in docs/augmentation.md.
ENHANCE_WIDE, ENHANCE_STANDARD = (0.01, 1.005, 2.0), (0.1, 1.0, 1.9)
EXPECTED = {
    "wide": {
        "Rotate": (0, 67, 135),
        "Solarize": (256, 128, 0),
        "Color": ENHANCE_WIDE,
        "Posterize": (8, 5, 2),
        "Contrast": ENHANCE_WIDE,
        "Brightness": ENHANCE_WIDE,
        "Sharpness": ENHANCE_WIDE,
        "ShearX": (0, 0.495, 0.99),
        "ShearY": (0, 0.495, 0.99),
        "TranslateX": (0, 16, 32),
        "TranslateY": (0, 16, 32),
        "Cutout": (0, 9, 19),
    },
    "standard": {
        "Rotate": (0, 15, 30),
        "Solarize": (256, 128, 0),
        "Color": ENHANCE_STANDARD,
        "Posterize": (8, 6, 4),
        "Contrast": ENHANCE_STANDARD,
        "Brightness": ENHANCE_STANDARD,
        "Sharpness": ENHANCE_STANDARD,
        "ShearX": (0, 0.15, 0.3),
        "ShearY": (0, 0.15, 0.3),
        "TranslateX": (0, 5, 10),
        "TranslateY": (0, 5, 10),
    },
}
SIGNED = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}


def _gray_images() -> np.ndarray:
    """8 real Fashion-MNIST images [8, 28, 28, 1], or smooth synthetic ones without the data."""
    try:
        return datasets.load_fashion_mnist(as_numpy=True, limit=8)[0]
    except FileNotFoundError:
        yy, xx = np.mgrid[0:28, 0:28] / 28.0
        waves = [127 + 120 * np.sin(7 * xx * (k + 1) + 5 * yy) * np.cos(3 * yy) for k in range(8)]
        return np.clip(np.stack(waves)[..., None], 0, 255).astype(np.uint8)


def _rgb_images() -> np.ndarray:
    """4 smooth, lightly noisy, non-square colour images [4, 24, 32, 3]."""
    yy, xx = np.mgrid[0:24, 0:32] / 32.0
    planes = [
        np.stack([128 + 100 * np.sin(6 * xx + k), 128 + 90 * np.cos(5 * yy - k), 250 * xx * yy], -1)
        for k in range(4)
    ]
    noise = np.random.default_rng(0).normal(0, 8, (4, 24, 32, 3))
    return np.clip(np.stack(planes) + noise, 0, 255).astype(np.uint8)


GRAY, RGB = _gray_images(), _rgb_images()
KINDS = {"gray_uint8": GRAY, "rgb_uint8": RGB, "rgb_float32": RGB.astype(np.float32)}


def _pil(name: str, image: np.ndarray, m: float) -> np.ndarray:
    """The independent reference: PIL applied to one uint8 image with magnitude m."""
    im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)

    def affine(*matrix):
        return im.transform(im.size, Image.AFFINE, matrix)

    out = {
        "Identity": lambda: im,
        "AutoContrast": lambda: ImageOps.autocontrast(im),
        "Equalize": lambda: ImageOps.equalize(im),
        "Rotate": lambda: im.rotate(m),
        "Solarize": lambda: ImageOps.solarize(im, m),
        "Color": lambda: ImageEnhance.Color(im).enhance(m),
        "Posterize": lambda: ImageOps.posterize(im, int(m)),
        "Contrast": lambda: ImageEnhance.Contrast(im).enhance(m),
        "Brightness": lambda: ImageEnhance.Brightness(im).enhance(m),
        "Sharpness": lambda: ImageEnhance.Sharpness(im).enhance(m),
        "ShearX": lambda: affine(1, m, 0, 0, 1, 0),
        "ShearY": lambda: affine(1, 0, 0, m, 1, 0),
        "TranslateX": lambda: affine(1, 0, m, 0, 1, 0),
        "TranslateY": lambda: affine(1, 0, 0, 0, 1, m),
        "Blur": lambda: im.filter(ImageFilter.BLUR),
        "Invert": lambda: ImageOps.invert(im),
        "FlipLR": lambda: ImageOps.mirror(im),
        "FlipUD": lambda: ImageOps.flip(im),
    }[name]()
    return np.asarray(out).reshape(image.shape)


def _rotation_ties(shape: tuple[int, int], degrees: float) -> np.ndarray:
    """[H, W] mask of the output pixels whose PIL source coordinate is an integer (a tie)."""
    height, width = shape
    theta = -np.radians(degrees)
    y, x = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = x - width / 2, y - height / 2
    sources = (np.cos(theta) * dx + np.sin(theta) * dy, -np.sin(theta) * dx + np.cos(theta) * dy)
    return np.any([np.abs(s - np.round(s)) < 1e-4 for s in sources], axis=0)


def _magnitude(name: str, level: int, space: str = "wide") -> float:
    return EXPECTED[space].get(name, (0, 0, 0))[LEVELS.index(level)]


def _apply_fixed(images: np.ndarray, name: str, m: float) -> np.ndarray:
    """``apply_ops`` with a one-op space whose magnitude is m at every level (no random sign)."""
    space = augment.build_space([(name, augment.Magnitude(offset=m))])
    n = len(images)
    out = augment.apply_ops(images, tf.zeros([n], tf.int32), tf.fill([n], 15), space=space)
    assert out.dtype == tf.as_dtype(images.dtype)
    return out.numpy()


def test_space_op_lists():
    assert (
        *augment.space_ops("standard"),
        "Blur",
        "Invert",
        "FlipLR",
        "FlipUD",
        "Cutout",
    ) == WIDE
    assert augment.space_ops("standard")[:3] == ("Identity", "AutoContrast", "Equalize")
    assert len(augment.space_ops("standard")) == 14


@pytest.mark.parametrize("space", ["wide", "standard"])
def test_level_to_magnitude_table(space):
    for op in augment.get_space(space).ops:
        values = op.magnitude.values(31)
        expected = [_magnitude(op.name, level, space) for level in LEVELS]
        np.testing.assert_allclose(values[list(LEVELS)], expected, rtol=1e-6, err_msg=op.name)
        assert op.magnitude.signed == (op.name in SIGNED), op.name
    # int_param truncates: Rotate wide at level 1 is int(135 / 30) = 4 degrees.
    assert augment.get_op("Rotate").magnitude.values(31)[1] == 4.0
    assert augment.get_op("Rotate").magnitude.values(11)[10] == 135.0


@needs_pil
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", PIL_OPS)
def test_op_matches_pil(name, level):
    """Exact equality with PIL except two justified tolerances.

    AutoContrast: PIL scales in float64, Keras' hook in float32, so a value on an
    exact integer boundary can land one below (max diff 1). Rotate: a nearest-
    neighbour pixel whose source coordinate is an exact integer (e.g. on the
    diagonals of a 135° turn) is a tie that float32 and PIL's float64 break
    differently; every other pixel must agree exactly.
    """
    signs = (1, -1) if name in SIGNED else (1,)
    for kind, sign in itertools.product(sorted(KINDS), signs):
        images, m = KINDS[kind], sign * _magnitude(name, level)
        ours = _apply_fixed(images, name, m).astype(np.float64)
        ref = np.stack([_pil(name, image, m) for image in images.astype(np.uint8)])
        diff = np.abs(ours - ref)
        if name == "AutoContrast":
            assert diff.max() <= 1 and diff.mean() <= 0.01
        elif name == "Rotate":
            ties = _rotation_ties(images.shape[1:3], m)
            assert not np.any(diff.max(axis=(0, 3)) * ~ties) and ties.mean() <= 1 / 8
        else:
            np.testing.assert_array_equal(ours, ref, err_msg=f"{name} m={m} {kind}")


def test_cutout_hand_computed():
    cutout = augment.get_op("Cutout").fn
    images = tf.fill([2, 8, 8, 1], 200.0)
    noise = tf.constant([[0.5, 0.5], [0.0, 0.95]])  # centres (4, 4) and (0, 7.6)
    out = cutout(images, tf.constant([4.0, 4.0]), noise).numpy()[..., 0]
    expected = np.full((2, 8, 8), 200.0)
    expected[0, 2:6, 2:6] = 0  # x0 = y0 = 4 - 4/2 = 2
    expected[1, 5:8, 0:4] = 0  # x0 = max(0, 0 - 2) = 0, y0 = floor(7.6 - 2) = 5, clipped
    np.testing.assert_array_equal(out, expected)


def test_cutout_through_apply_ops_blacks_out_a_clipped_square():
    images = np.full((64, 32, 32, 3), 255, np.uint8)
    out = augment.apply_ops(images, [WIDE.index("Cutout")] * 64, [30] * 64, seed=4).numpy()
    for image in out:
        rows, cols = np.nonzero(image[..., 0] == 0)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert len(rows) == height * width and height <= 19 and width <= 19
        assert (image[..., 0] == 0).sum() * 3 == (image == 0).sum()
    assert any((image == 0).sum() == 19 * 19 * 3 for image in out)


@needs_pil
def test_random_signs_are_per_image_and_seeded():
    images = np.repeat(RGB[:1], 32, axis=0)
    op = WIDE.index("TranslateX")
    out = augment.apply_ops(images, [op] * 32, [15] * 32, seed=7).numpy()
    plus, minus = _pil("TranslateX", RGB[0], 16), _pil("TranslateX", RGB[0], -16)
    is_plus = [np.array_equal(o, plus) for o in out]
    is_minus = [np.array_equal(o, minus) for o in out]
    assert all(p != m for p, m in zip(is_plus, is_minus))
    assert 0 < sum(is_plus) < 32
    again = augment.apply_ops(images, [op] * 32, [15] * 32, seed=7).numpy()
    np.testing.assert_array_equal(out, again)


def _unsigned_space() -> augment.Space:
    """The wide ops without random signs and without Cutout: no per-image randomness."""
    return augment.build_space(
        [
            dataclasses.replace(op, magnitude=dataclasses.replace(op.magnitude, signed=False))
            for op in augment.get_space("wide").ops
            if op.name != "Cutout"
        ]
    )


@pytest.mark.parametrize("images", [GRAY, RGB.astype(np.float32)], ids=["gray", "rgb"])
def test_per_image_choice_equals_each_image_alone(images):
    """Two slots, every op in each slot: image i equals op2(op1(image i)) run on it alone."""
    space = _unsigned_space()
    n_ops = len(space.ops)
    batch = np.resize(images, (n_ops, *images.shape[1:]))
    rng = np.random.default_rng(1)
    op_ids = np.stack([rng.permutation(n_ops), rng.permutation(n_ops)], axis=1)
    levels = rng.integers(0, 31, (n_ops, 2))
    out = augment.apply_ops(batch, op_ids, levels, space=space).numpy()
    noise = tf.zeros([1, 2])
    for i in range(n_ops):
        alone = tf.constant(batch[i : i + 1], tf.float32)
        for k in range(2):
            op = space.ops[op_ids[i, k]]
            alone = op.fn(alone, op.magnitude.values(31)[levels[i, k : k + 1]], noise)
        np.testing.assert_array_equal(out[i], alone.numpy()[0], err_msg=f"image {i}")


def test_float_with_integer_values_equals_uint8():
    rng = np.random.default_rng(2)
    op_ids = rng.integers(0, len(WIDE), (40, 3))
    levels = rng.integers(0, 31, (40, 3))
    batch = np.concatenate([RGB] * 10)
    as_uint8 = augment.apply_ops(batch, op_ids, levels, seed=3).numpy()
    for dtype in (np.float32, np.float64, np.float16):
        as_float = augment.apply_ops(batch.astype(dtype), op_ids, levels, seed=3)
        assert as_float.dtype == tf.as_dtype(dtype)
        np.testing.assert_array_equal(as_float.numpy().astype(np.float64), as_uint8)


def test_grayscale_color_is_identity_and_tiny_images_work():
    color = WIDE.index("Color")
    np.testing.assert_array_equal(augment.apply_ops(GRAY, [color] * 8, [30] * 8).numpy(), GRAY)
    tiny = np.resize(RGB[:, :3, :4], (len(WIDE), 3, 4, 3))
    out = augment.apply_ops(tiny, np.arange(len(WIDE)), [30] * len(WIDE), seed=0)
    assert out.shape == tiny.shape
    empty = augment.apply_ops(RGB[:0], tf.zeros([0], tf.int32), tf.zeros([0], tf.int32))
    assert empty.shape == (0, 24, 32, 3)


def test_tf_function_and_tf_data_parallel_map_match_eager():
    rng = np.random.default_rng(5)
    batch = np.concatenate([RGB] * 4)
    op_ids = rng.integers(0, len(WIDE), (2, 16, 2))
    levels = rng.integers(0, 31, (2, 16, 2))
    seeds = np.stack([np.arange(2), np.full(2, 9)], axis=1)
    eager = [
        augment.apply_ops(batch, o, lv, seed=s).numpy() for o, lv, s in zip(op_ids, levels, seeds)
    ]

    compiled = tf.function(lambda x, o, lv, s: augment.apply_ops(x, o, lv, seed=s))
    for o, lv, s, expected in zip(op_ids, levels, seeds, eager):
        np.testing.assert_array_equal(compiled(batch, o, lv, s).numpy(), expected)

    ds = tf.data.Dataset.from_tensor_slices((op_ids, levels, seeds)).map(
        lambda o, lv, s: augment.apply_ops(batch, o, lv, seed=s),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    for got, expected in zip(ds.as_numpy_iterator(), eager):
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(eager[0], augment.apply_ops(batch, op_ids[0], levels[0], seed=1))


def test_unseeded_calls_work_in_tf_data():
    ds = tf.data.Dataset.from_tensors(RGB).repeat(3)
    ds = ds.map(lambda x: augment.apply_ops(x, [3, 10, 12, 18], [30] * 4), num_parallel_calls=2)
    assert [b.shape for b in ds.as_numpy_iterator()] == [RGB.shape] * 3


def test_errors_are_clear():
    ok_ids, ok_levels = np.zeros(4, np.int32), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="unknown search space 'huge'"):
        augment.apply_ops(RGB, ok_ids, ok_levels, space="huge")
    with pytest.raises(ValueError, match="unknown augmentation op 'Nope'"):
        augment.build_space(["Identity", "Nope"])
    with pytest.raises(ValueError, match="already registered"):
        augment.register_op("Rotate", augment.get_op("Identity").fn)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"levels must lie in \[0, 30\]"):
        augment.apply_ops(RGB, ok_ids, [0, 31, 0, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"levels must lie in \[0, 10\]"):
        augment.apply_ops(RGB, ok_ids, [0, 11, 0, 0], num_levels=11)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"op_ids must lie in \[0, 13\]"):
        augment.apply_ops(RGB, [0, 14, 0, 0], ok_levels, space="standard")
    with pytest.raises(tf.errors.InvalidArgumentError, match="op_ids must lie"):
        augment.apply_ops(RGB, [0, -1, 0, 0], ok_levels)
    with pytest.raises(tf.errors.InvalidArgumentError, match="levels needs one row per image"):
        augment.apply_ops(RGB, ok_ids, [0, 0, 0])
    with pytest.raises(ValueError, match=r"images must be \[B, H, W, C\]"):
        augment.apply_ops(RGB[0], ok_ids, ok_levels)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        augment.apply_ops(np.zeros((4, 8, 8, 4), np.uint8), ok_ids, ok_levels)
    with pytest.raises(TypeError, match="uint8 or float"):
        augment.apply_ops(RGB.astype(np.int32), ok_ids, ok_levels)
    with pytest.raises(TypeError, match="levels must be an integer tensor"):
        augment.apply_ops(RGB, ok_ids, ok_levels.astype(np.float32))
    with pytest.raises(ValueError, match="differ in slots"):
        augment.apply_ops(RGB, np.zeros((4, 2), np.int32), ok_levels)
    with pytest.raises(ValueError, match=r"\[B\] or \[B, K\]"):
        augment.apply_ops(RGB, np.zeros((4, 1, 1), np.int32), np.zeros((4, 1, 1), np.int32))


def test_register_keras_core_layer_as_op():
    """A Keras core layer's per-example hook becomes an op in a few lines."""
    keras = pytest.importorskip("keras")
    layer = keras.layers.RandomColorDegeneration(1.0, value_range=(0, 255))
    fn = augment.layer_op(layer, lambda m, images: {"factor": m[:, None, None, None]})
    augment.register_op("Degenerate", fn, augment.Magnitude(span=1.0), replace=True)
    space = augment.build_space(["Identity", "Degenerate"])
    assert augment.space_ops(space) == ("Identity", "Degenerate")

    images = RGB.astype(np.float32)
    out = augment.apply_ops(images, [1, 0, 1, 1], [30, 30, 15, 0], space=space).numpy()
    factors = np.array([1.0, 0.5, 0.0], np.float32)[:, None, None, None]
    expected = layer.transform_images(images[[0, 2, 3]], {"factor": factors}, training=True)
    np.testing.assert_allclose(out[[0, 2, 3]], np.asarray(expected), atol=1e-4)
    np.testing.assert_array_equal(out[1], images[1])
    assert np.abs(out[0] - images[0]).mean() > 1  # level 30 really desaturates


def test_register_keras_cv_layer_as_op():
    """A keras-cv layer (``augment_images`` hook) registered as an op matches our Solarize."""
    keras_cv = pytest.importorskip("keras_cv")
    layer = keras_cv.layers.Solarization(value_range=(0, 255))

    def transformation(threshold, images):
        threshold = tf.reshape(threshold, [-1, 1, 1, 1])
        return {"additions": tf.zeros_like(threshold), "thresholds": threshold}

    augment.register_op(
        "CvSolarize",
        augment.layer_op(layer, transformation),
        augment.get_op("Solarize").magnitude,
        replace=True,
    )
    space = augment.build_space(["Solarize", "CvSolarize"])
    levels = np.array([0, 7, 15, 30])
    ours = augment.apply_ops(RGB, np.zeros(4, np.int32), levels, space=space)
    theirs = augment.apply_ops(RGB, np.ones(4, np.int32), levels, space=space)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
