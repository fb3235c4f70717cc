"""PNG plots of what the policies learned."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pixels(fig):
    """The figure as an RGB ``uint8`` array ``[H, W, 3]`` (then closed)."""
    import numpy as np

    fig.tight_layout()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    _pyplot().close(fig)
    return pixels


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    fig.clf()
    _pyplot().close(fig)
    return path


def plot_split_probabilities(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Writes a PNG of each split's probability over training steps.

    ``history`` is :attr:`gar_tf.callbacks.SplitSamplerLogger.history`.
    """
    plt = _pyplot()
    if not history:
        raise ValueError("history is empty: nothing to plot (was the logger used in fit?).")
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for name in history[0]["probabilities"]:
        ax.plot(steps, [h["probabilities"][name] for h in history], label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(title or "split probabilities")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_augmentation_heatmap(summary: dict, path: str | Path, title: str = "") -> Path:
    """Writes a PNG of :meth:`gar_tf.AugmentationPolicy.summary`: ``p(op)`` as bars against
    uniform (left) and ``p(level | op)`` as a heat map (right), ops sorted by probability."""
    import numpy as np

    plt = _pyplot()
    ranked = sorted(summary["ops"].items(), key=lambda kv: -kv[1]["probability"])
    names = [name for name, _ in ranked]
    probability = np.array([op["probability"] for _, op in ranked])
    levels = np.array([op["level_distribution"] for _, op in ranked])
    fig, (bars, heat) = plt.subplots(
        1,
        2,
        figsize=(10, 0.3 * len(names) + 1.8),
        dpi=120,
        gridspec_kw={"width_ratios": [1, 2.4]},
        sharey=True,
    )
    rows = np.arange(len(names))
    uniform = 1 / len(names)
    bars.barh(rows, probability, color=np.where(probability >= uniform, "tab:blue", "tab:gray"))
    bars.axvline(uniform, color="k", ls="--", lw=1, label=f"uniform 1/{len(names)}")
    bars.set_yticks(rows, labels=[f"{n} {p:.3f}" for n, p in zip(names, probability)])
    bars.invert_yaxis()
    bars.set_xlabel("p(op)")
    bars.legend(fontsize="small", loc="lower right")
    # Colour: each level's probability relative to uniform (1 = uniform), on a log scale.
    ratio = levels * levels.shape[1]
    spread = float(max(2.0, np.abs(np.log2(np.clip(ratio, 1e-3, None))).max()))
    image = heat.imshow(
        np.log2(np.clip(ratio, 1e-3, None)),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-spread,
        vmax=spread,
        interpolation="nearest",
    )
    heat.set_xlabel("level (black bar: mean level; docs/augmentation.md maps levels to magnitudes)")
    heat.plot([op["mean_level"] for _, op in ranked], rows, "k|", ms=9, mew=2)
    bar = fig.colorbar(image, ax=heat, fraction=0.04)
    bar.set_label("p(level | op) / uniform, log2 (0: uniform)")
    fig.suptitle(title or "learned augmentation policy", fontsize=10)
    return _save(fig, path)


def augmentation_examples(
    originals, augmented, labels: list[str], value_range=(0, 255), columns: int = 4
):
    """An RGB ``uint8`` array ``[H, W, 3]`` showing each original beside its augmented
    version, titled with its ops and levels (for ``tf.summary.image`` or a PNG)."""
    import numpy as np

    plt = _pyplot()
    originals, augmented = np.asarray(originals), np.asarray(augmented)
    if originals.shape != augmented.shape or len(labels) != len(originals):
        raise ValueError(
            f"originals {originals.shape}, augmented {augmented.shape} and {len(labels)} labels "
            "must describe the same images."
        )
    rows = -(-len(originals) // columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.6 * columns, 1.7 * rows), dpi=100)
    low, high = value_range
    originals, augmented = (np.clip((a - low) / (high - low), 0, 1) for a in (originals, augmented))
    gray = originals.shape[-1] == 1
    for i, ax in enumerate(np.atleast_2d(axes).reshape(-1, 2)):
        for side in ax:
            side.axis("off")
        if i >= len(originals):
            continue
        for side, image, title in ((ax[0], originals[i], "original"), (ax[1], augmented[i], "")):
            side.imshow(image[..., 0] if gray else image, cmap="gray", vmin=0, vmax=1)
            side.set_title(title or labels[i].replace(" + ", "\n"), fontsize=7)
    return _pixels(fig)


def op_probability_bars(summary: dict, step: int | None = None):
    """An RGB ``uint8`` array of every op's probability as a labelled bar, uniform marked,
    from :meth:`gar_tf.AugmentationPolicy.summary`: all ops compared on one axis."""
    plt = _pyplot()
    names = list(summary["ops"])
    probabilities = [summary["ops"][n]["probability"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(names) + 1.2), dpi=100)
    ax.barh(range(len(names)), probabilities, color="tab:orange")
    ax.axvline(1 / len(names), color="gray", linestyle="--", linewidth=1, label="uniform")
    ax.set_yticks(range(len(names)), labels=names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(2 / len(names), 1.05 * max(probabilities)))  # steady across steps
    ax.set_xlabel("p(op)")
    ax.set_title("op probabilities" + ("" if step is None else f" at step {step}"), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _pixels(fig)
