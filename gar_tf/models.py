"""Small reference models for this library's experiments and examples."""

from __future__ import annotations

import keras


def small_cnn(
    input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, name: str = "small_cnn"
) -> keras.Model:
    """Two 3x3 conv layers (16, 32 filters) with max-pooling, then Dense 64 and softmax."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )
