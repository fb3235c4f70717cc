"""gar_tf.backbones: the reference backbones and the names the trainers build them from."""

import keras
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
