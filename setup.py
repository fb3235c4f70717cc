"""gar-tf: in-loop meta-learning with the gradient-alignment reward for Keras 3 / TensorFlow."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="gar-tf",
    version="0.1.0",
    description=__doc__,
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # keras>=3.13 requires Python >=3.11 (TensorFlow 2.16 has wheels up to 3.12, 2.21 up to 3.13).
    python_requires=">=3.11",
    packages=find_packages(include=["gar_tf", "gar_tf.*", "gar_tf_trainers"]),
    entry_points={
        "console_scripts": [
            "gar-tf-augment-search = gar_tf_trainers._commands:augment_search",
            "gar-tf-split-mixture = gar_tf_trainers._commands:split_mixture",
            "gar-tf-alignment-demo = gar_tf_trainers._commands:alignment_demo",
            "gar-tf-split-mixture-report = gar_tf_trainers._commands:split_mixture_report",
        ]
    },
    # Upper bounds are the first release series not tested: tox -e lowest runs the suite on the
    # lower bounds (TF 2.16.2, Keras 3.15.0, numpy 1.26), tox -e highest on TF 2.21.0 and
    # Keras 3.15.1.
    # Raise a bound only after `tox -e highest` passes with the new release pinned there.
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.15,<3.16",
        "numpy>=1.26",
        "tensorboard>=2.16",  # gar_tf.callbacks writes Custom Scalars layouts
        "tensorflow-datasets>=4.9.10",
        # tensorflow-datasets imports it (lazily, in core/dataset_builder.py) on every Python but
        # declares it only for Python < 3.9; tests/test_packaging.py fails once it stops.
        "importlib_resources>=6.0",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.6", "pillow>=10"],
        "keras-cv": ["keras-cv>=0.9"],
    },
)
