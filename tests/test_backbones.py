"""gar_tf.backbones: the reference backbones and the names the trainers build them from."""

import keras
import numpy as np
import pytest

from gar_tf import backbones


def _convs(model: keras.Model, size: int) -> list[int]:
    """Filters of the model's ``size x size`` Conv2D layers, in order."""
    return [
        layer.filters
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (size, size)
    ]


@pytest.mark.parametrize(
    "name, depth, width",
    [("resnet8", 8, 16), ("resnet14", 14, 16), ("resnet8_w32", 8, 32), ("resnet20_w4", 20, 4)],
)
def test_resnet_names_build_that_depth_and_width(name, depth, width):
    model = backbones.from_name(name, (12, 12, 3), 7)
    assert model.name == f"resnet{depth}_w{width}"
    convs = _convs(model, 3)
    assert len(convs) + 1 == depth  # the 3x3 convolutions and the Dense layer
    assert (convs[0], convs[-1]) == (width, 4 * width)
    assert model.input_shape == (None, 12, 12, 3) and model.output_shape == (None, 7)


def test_small_cnn_name():
    model = backbones.from_name("small_cnn", (28, 28, 1), 10)
    assert model.name == "small_cnn" and _convs(model, 3) == [16, 32]
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize(
    "name", ["resnet", "resnet_w16", "resnet8_w", "resnet8_w0", "ResNet8", "resnet8x", "cnn", ""]
)
def test_bad_names_raise_naming_the_forms(name):
    with pytest.raises(ValueError, match="small_cnn, or resnetD / resnetD_wW"):
        backbones.from_name(name)


def test_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match=r"6 n \+ 2"):
        backbones.from_name("resnet10")


@pytest.mark.parametrize("name, depth, widen", [("wrn10_1", 10, 1), ("wrn16_2", 16, 2)])
def test_wrn_names_build_that_depth_and_width(name, depth, widen):
    model = backbones.from_name(name, (12, 12, 3), 7)
    assert model.name == name
    convs = _convs(model, 3)
    assert len(convs) == 1 + 6 * (depth - 4) // 6  # the stem and two per block
    assert convs[0] == 16 and sorted(set(convs[1:])) == [16 * widen, 32 * widen, 64 * widen]
    assert len(_convs(model, 1)) == (2 if widen == 1 else 3)  # projections where shapes change
    assert model.input_shape == (None, 12, 12, 3) and model.output_shape == (None, 7)


def test_wrn28_10_has_the_published_parameter_count():
    """36,479,194 trainable parameters on CIFAR-10, the count of the standard PyTorch
    WRN-28-10 (bias-free convolutions, 1x1 projections in all three stages, Dense with
    bias); the BatchNorm moving statistics (17,952 values) are not parameters."""
    model = backbones.wide_resnet((32, 32, 3), 10, depth=28, widen=10)
    count = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert count == 36_479_194
    assert sum(int(np.prod(v.shape)) for v in model.non_trainable_weights) == 17_952


@pytest.mark.parametrize("name", ["wrn12_1", "wrn4_1", "wrn28", "wrn28_0", "wrn_10"])
def test_bad_wrn_names_raise(name):
    with pytest.raises(ValueError, match="wrnD_K"):
        backbones.from_name(name, (8, 8, 3))
