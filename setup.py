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
    python_requires=">=3.10",
    packages=find_packages(include=["gar_tf", "gar_tf.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.15",
        "numpy>=1.26",
        "tensorboard>=2.16",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources>=6.0",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.6", "pillow>=10"],
        "keras-cv": ["keras-cv>=0.9"],
    },
)
