"""Command-line pieces the trainers share."""

from __future__ import annotations

import argparse

import gar_tf

DATASETS = ("fashion_mnist", "mnist")


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the trainer's docstring, with the dataset options."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="fashion_mnist",
        help="real offline dataset (see gar_tf.datasets for where it is read from)",
    )
    p.add_argument("--data-dir", default=None, help="directory holding the dataset's IDX files")
    return p


def load(args: argparse.Namespace, split: str, **options):
    """``(images uint8 [N, 28, 28, 1], labels)`` of ``args.dataset``'s ``split``."""
    loader = getattr(gar_tf.datasets, f"load_{args.dataset}")
    return loader(args.data_dir, split, as_numpy=True, **options)
