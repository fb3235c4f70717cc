"""Command-line flags and their checks, shared by the trainers and benchmarks/quality.py.

Nothing here imports TensorFlow (or gar_tf): ``--help`` and a refused flag answer at
once. The pieces that build data and models after parsing are in ``_build``. Every flag
is checked before any data is loaded: a script's ``checks`` return what is wrong with
``args`` and what to pass instead, and ``parse`` turns them into argparse's usage error
(exit status 2).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

DATASETS = ("fashion_mnist", "mnist")
TFDS_DATASETS = ("cifar10", "cifar100")  # read by gar_tf.datasets.load_tfds (augment_search)
TRAIN_SIZE = 60_000  # training images of both IDX datasets
# Training images of the rarest class (MNIST's 5s), the most --per-class can draw.
MAX_PER_CLASS = {"fashion_mnist": 6000, "mnist": 5421, "cifar10": 5000, "cifar100": 500}
NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
_RESNET = re.compile(r"resnet([1-9]\d*)(?:_w([1-9]\d*))?")  # as gar_tf.backbones
_WRN = re.compile(r"wrn([1-9]\d*)_([1-9]\d*)")
BACKBONES = (
    "small_cnn, or resnetD / resnetD_wW (D = 6 n + 2, e.g. resnet8, resnet14_w32), "
    "or wrnD_K (wide ResNet, D = 6 n + 4, e.g. wrn28_10)"
)

Checks = Callable[[argparse.Namespace], Iterable[str]]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends each flag's default.

    A default of None or False is not shown: such a flag's help says what happens
    without it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = not (
            action.default is None or action.default is False or action.default == argparse.SUPPRESS
        )
        if shown and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def parser(doc: str, datasets: tuple[str, ...] = DATASETS) -> argparse.ArgumentParser:
    """A parser described by the docstring's first paragraph (its ``Example:`` line as the
    epilog), with ``--dataset`` (one of ``datasets``) and ``--data-dir``."""
    paragraphs = doc.strip().split("\n\n")
    example = [p for p in paragraphs[1:] if p.startswith("Example")]
    p = argparse.ArgumentParser(
        description=paragraphs[0],
        epilog="\n\n".join(example) or None,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--dataset",
        choices=datasets,
        default="fashion_mnist",
        help="real offline dataset (see gar_tf.datasets for where it is read from)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory holding the dataset's IDX files (default: the places gar_tf.datasets "
        "searches)",
    )
    return p


def parse(
    p: argparse.ArgumentParser, argv: list[str] | None, *checks: Checks
) -> argparse.Namespace:
    """``p.parse_args(argv)``, then the checks in order: the first that finds problems ends
    in ``p.error`` (later checks may rely on what earlier ones checked)."""
    args = p.parse_args(argv)
    for check in checks:
        problems = list(check(args))
        if problems:
            p.error("\n  ".join(problems))
    return args


def round_up(value: float, digits: int = 2) -> str:
    """``value`` rounded up to ``digits`` significant digits, for a minimum to suggest."""
    if value <= 0:
        return f"{value:g}"
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return f"{math.ceil(value * scale) / scale:g}"


def at_least(args: argparse.Namespace, minimum: float, *flags: str) -> list[str]:
    """A problem for each ``--flag`` (given as its dest) whose value is below ``minimum``."""
    return [
        f"{_flag(dest)} must be >= {minimum}, got {getattr(args, dest)}"
        for dest in flags
        if getattr(args, dest) < minimum
    ]


def above(args: argparse.Namespace, minimum: float, *flags: str) -> list[str]:
    """A problem for each ``--flag`` (given as its dest) whose value is not > ``minimum``."""
    return [
        f"{_flag(dest)} must be > {minimum}, got {getattr(args, dest)}"
        for dest in flags
        if not getattr(args, dest) > minimum
    ]


def positive(args: argparse.Namespace, *flags: str) -> list[str]:
    """A problem for each ``--flag`` (given as its dest) whose value is not > 0."""
    return above(args, 0, *flags)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_backbone(p: argparse.ArgumentParser, *, per_class: int, model: str) -> None:
    """``--per-class`` (training subset) and ``--model`` (a ``gar_tf.backbones`` name)."""
    p.add_argument(
        "--per-class", type=int, default=per_class, help="training images per class (stratified)"
    )
    p.add_argument("--model", default=model, help=BACKBONES)


def check_backbone(args: argparse.Namespace) -> list[str]:
    """``--per-class`` within the dataset and one full batch; ``--model`` a backbone name."""
    most = MAX_PER_CLASS[args.dataset]
    if not 1 <= args.per_class <= most:
        return [f"--per-class must be in 1..{most} for {args.dataset}, got {args.per_class}"]
    classes = NUM_CLASSES[args.dataset]
    images = classes * args.per_class
    problems = []
    if images < args.batch_size:
        fewest = -(-args.batch_size // classes)
        problems.append(
            f"--per-class {args.per_class} gives {images} training images, fewer than one "
            f"batch of --batch-size {args.batch_size}: pass --per-class >= {fewest} or "
            f"--batch-size <= {images}"
        )
    if not backbone_name_ok(args.model):
        problems.append(f"unknown --model {args.model!r}; use {BACKBONES}")
    return problems


def backbone_name_ok(name: str) -> bool:
    """Whether ``gar_tf.backbones.from_name`` accepts ``name``, without importing it
    (tests/test_cli.py checks that the two agree)."""
    match, wide = _RESNET.fullmatch(name), _WRN.fullmatch(name)
    resnet = match is not None and (int(match[1]) - 2) % 6 == 0
    wrn = wide is not None and (int(wide[1]) - 4) % 6 == 0 and int(wide[1]) >= 10
    return name == "small_cnn" or resnet or wrn


def add_training(
    p: argparse.ArgumentParser,
    *,
    epochs: int | None,
    learning_rate: float = 1e-3,
    epochs_help: str = "passes over the training subset",
    learning_rate_help: str = "model Adam learning rate",
) -> None:
    """``--epochs`` (unless ``epochs`` is None), ``--batch-size`` and ``--learning-rate``."""
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    p.add_argument("--batch-size", type=int, default=128, help="examples per batch")
    p.add_argument("--learning-rate", type=float, default=learning_rate, help=learning_rate_help)


def check_training(args: argparse.Namespace) -> list[str]:
    """``--epochs`` (if any) and ``--batch-size`` >= 1, ``--learning-rate`` > 0."""
    flags = ("epochs", "batch_size") if hasattr(args, "epochs") else ("batch_size",)
    return at_least(args, 1, *flags) + positive(args, "learning_rate")


def add_policy(p: argparse.ArgumentParser, op_rule: bool = True) -> None:
    """``--policy-lr``, ``--policy-beta1``, ``--ensemble``, ``--levels``,
    ``--min-op-probability`` and (if ``op_rule``) ``--op-rule`` of an ``AugmentationPolicy``
    (see ``_build.policy``)."""
    # Defaults from the measured sweep (docs/quality.md): they learn within a few hundred updates.
    p.add_argument("--policy-lr", type=float, default=0.1, help="policy Adam learning rate")
    p.add_argument(
        "--policy-beta1", type=float, default=0.0, help="policy Adam beta_1 (first-moment decay)"
    )
    p.add_argument("--ensemble", type=int, default=1, help="independent samplers per batch")
    p.add_argument(
        "--levels",
        choices=["categorical", "normal"],
        default="normal",
        help="level distribution per op: categorical (one logit per level) or normal "
        "(discretised, learned location and spread)",
    )
    p.add_argument(
        "--min-op-probability",
        type=float,
        default=0.02,
        help="floor on each op's probability, below 1 / (number of ops)",
    )
    if op_rule:
        p.add_argument(
            "--op-rule",
            choices=["reinforce", "evidence"],
            default="reinforce",
            help="how the op distribution learns: reinforce (with the levels) or evidence "
            "(ops move only as far as their mean rewards differ beyond the noise)",
        )


def check_policy(args: argparse.Namespace) -> list[str]:
    """``--policy-lr`` > 0, ``--policy-beta1`` in [0, 1) and ``--ensemble`` >= 1."""
    problems = positive(args, "policy_lr") + at_least(args, 1, "ensemble")
    if not 0 <= args.policy_beta1 < 1:
        problems.append(f"--policy-beta1 must be in [0, 1), got {args.policy_beta1}")
    if args.min_op_probability < 0:
        problems.append(f"--min-op-probability must be >= 0, got {args.min_op_probability}")
    return problems


def check_held_out_share(args: argparse.Namespace, share: float) -> list[str]:
    """``share`` (a ``--held-out-share``) in (0, 1), leaving a full batch on each side."""
    if not 0 < share < 1:
        return [f"--held-out-share must be in (0, 1), got {share}"]
    images = NUM_CLASSES[args.dataset] * args.per_class
    held = round(share * images)
    if min(held, images - held) < args.batch_size:
        return [
            f"--held-out-share {share} of {images} training images holds out {held} and "
            f"trains on {images - held}; each needs at least one batch of --batch-size "
            f"{args.batch_size}"
        ]
    return []


def add_logging(
    p: argparse.ArgumentParser,
    *,
    logdir: str,
    logdir_help: str,
    log_every: int | None = None,
    log_every_help: str = "",
) -> None:
    """``--log-every`` (unless ``log_every`` is None) and ``--logdir``."""
    if log_every is not None:
        p.add_argument("--log-every", type=int, default=log_every, help=log_every_help)
    p.add_argument("--logdir", default=logdir, help=logdir_help)


def check_logging(args: argparse.Namespace) -> list[str]:
    """``--log-every`` (if any) >= 1 and ``--logdir`` not a file."""
    problems = at_least(args, 1, "log_every") if hasattr(args, "log_every") else []
    if Path(args.logdir).is_file():
        problems.append(f"--logdir {args.logdir} is a file; pass a directory")
    return problems
