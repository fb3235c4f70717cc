"""The trainers' and benchmarks' command lines: bad flags refused before any data or training,
and ``--help`` that shows every default, hides internal flags and imports no TensorFlow.

Each script runs in a fresh ``python -X importtime`` process, so the modules it imported are
known; the refused flags must not import TensorFlow either (they are checked first)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every command-line script (modules starting with "_" are their shared parts).
SCRIPTS = tuple(p.stem for p in sorted((ROOT / "gar_tf_trainers").glob("[!_]*.py"))) + tuple(
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "benchmarks").glob("[!_]*.py"))
)


def run(script: str, *flags: str, cwd: Path = ROOT) -> tuple[int, str, str, set[str]]:
    """``(exit status, stdout, stderr without the import times, imported modules)``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # A trainer by name runs as installed (python -m gar_tf_trainers.<name>); benchmarks as files.
    target = [str(ROOT / script)] if "/" in script else ["-m", f"gar_tf_trainers.{script}"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *target, *flags],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    imported, stderr = set(), []
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            stderr.append(line)
    return done.returncode, done.stdout, "\n".join(stderr), imported


def heavy(imported: set[str]) -> set[str]:
    return {m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "gar_tf")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_fast_complete_and_hides_internal_flags(script):
    status, out, err, imported = run(script, "--help")
    assert status == 0, err
    assert not heavy(imported), f"--help imported {sorted(heavy(imported))[:5]}"
    assert "--child" not in out
    assert "see above" not in out
    options = out.split("options:", 1)[1]
    # Each flag's entry: its first line starts with two spaces and a dash.
    entries = re.split(r"\n  (?=-)", options)[1:]
    for entry in entries:
        flag = entry.split()[0]
        if flag in ("-h,", "--quick", "--no-keras-cv", "--overwrite"):
            continue  # help and switches (off unless given)
        text = " ".join(entry.split()[1:])
        assert "default" in text, f"{script} {flag}: no default shown: {entry!r}"
        assert len(text) > len(flag) + 15, f"{script} {flag}: no help text"


REFUSED = [
    # split_mixture: 0 steps would read the endless sampler forever
    ("split_mixture", ["--passes", "0"], "--passes >= 0.0022"),
    ("split_mixture", ["--passes", "0.001"], "gives 0 steps"),
    # every split corrupted: no clean split for the oracle
    ("split_mixture", ["--corruption", "both", "--splits", "2", "--runs", "oracle"],
     "--runs oracle needs a clean split"),
    ("split_mixture", ["--corruption", "both", "--splits", "2"], "--splits >= 3"),
    ("split_mixture", ["--splits", "1"], "--splits must be >= 2"),
    ("split_mixture", ["--corruption", "sizes", "--train-size", "12"], "--train-size >= 16"),
    ("split_mixture", ["--corruption", "sizes", "--splits", "1"], "--splits must be >= 2"),
    ("split_mixture", ["--min-probability", "0.5"], "[0, 1/4)"),
    ("split_mixture", ["--clean-size", "128"], "--clean-size must be in [0, "),
    ("split_mixture", ["--held-out-size", "1000", "--reward", "next"],
     "--held-out-size must be 0 or in [--batch-size 128, 0]"),
    ("split_mixture", ["--held-out-size", "1000", "--train-size", "24000"],
     "--held-out-size needs --reward next"),
    ("split_mixture", ["--held-out-size", "200", "--train-size", "24000", "--reward", "next",
                       "--clean-size", "16"], "two comparisons: pass one"),
    ("split_mixture", ["--other-splits"], "--other-splits needs --reward next"),
    ("split_mixture", ["--other-splits", "--reward", "next", "--clean-size", "16"],
     "a comparison of its own"),
    ("split_mixture", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("split_mixture", ["--entropy", "0.1"], "--entropy need(s) --rule reinforce"),
    ("split_mixture", ["--rule", "reinforce", "--temperature", "1"], "--rule evidence"),
    ("split_mixture", ["--temperature", "0"], "--temperature must be > 0"),
    ("split_mixture", ["--horizon", "1"], "--horizon must be > 1"),
    ("split_mixture", ["--min-steps", "0.5"], "--min-steps must be >= 1"),
    ("split_mixture", ["--min-steps", "40", "--horizon", "20"], "can never be reached"),
    ("split_mixture", ["--noise-rates", "0", "1"], "needs --corruption graded"),
    ("split_mixture", ["--corruption", "graded", "--noise-rates", "0", "0.5"],
     "one rate per split"),
    ("split_mixture", ["--corruption", "graded", "--noise-rates", "0", "0", "0", "2"],
     "must be in [0, 1]"),
    ("split_mixture", ["--corruption", "graded", "--noise-rates", "1", "1", "1", "1"],
     "--runs oracle needs a clean split"),
    ("split_mixture", ["--train-size", "64", "--passes", "1"], "gives 0 steps"),
    # alignment_demo: no reference images left; no mislabelled examples for the AUC
    ("alignment_demo", ["--train-size", "60000"], "--train-size <= 59000"),
    ("alignment_demo", ["--noise", "0"], "--noise must be in (0, 1)"),
    ("alignment_demo", ["--noise", "1"], "--noise must be in (0, 1)"),
    ("alignment_demo", ["--epochs", "0"], "--epochs must be >= 1"),
    # augment_search: fewer images than one batch
    ("augment_search", ["--per-class", "10"], "pass --per-class >= 13"),
    ("augment_search", ["--per-class", "7000"], "1..6000"),
    ("augment_search", ["--model", "resnet9"], "unknown --model 'resnet9'"),
    ("augment_search", ["--comparison", "slice", "--clean-size", "0"],
     "--clean-size in 1..127"),
    ("augment_search", ["--comparison", "held_out", "--held-out-share", "1"],
     "--held-out-share must be in (0, 1)"),
    ("augment_search", ["--comparison", "held_out", "--per-class", "20"],
     "holds out 40 and trains on 160; each needs at least one batch"),
    ("augment_search", ["--max-ops", "0"], "--max-ops must be >= 1"),
    ("augment_search", ["--policy-lr", "0"], "--policy-lr must be > 0"),
    ("augment_search", ["--policy-beta1", "1"], "--policy-beta1 must be in [0, 1)"),
    ("augment_search", ["--min-op-probability", "-0.1"], "--min-op-probability must be >= 0"),
    # the CIFAR preset: its defaults are checked like flags; data directory of the right kind
    ("augment_search", ["--preset", "cifar100", "--per-class", "600"], "1..500 for cifar100"),
    ("augment_search", ["--preset", "cifar10", "--data-dir", "/x"],
     "pass --tfds-data-dir, not --data-dir"),
    ("augment_search", ["--tfds-data-dir", "/x"], "--tfds-data-dir is read only for"),
    ("augment_search", ["--weight-decay", "0.1"], "--weight-decay needs --optimizer sgd"),
    ("augment_search", ["--preset", "cifar10", "--cutout", "-1"], "--cutout must be >= 0"),
    # quality: the transfer export missing is found before the other configs train
    ("benchmarks/quality.py", ["--policy", "/nonexistent"], "has no policy.json"),
    ("benchmarks/quality.py", ["--per-class", "5"], "fewer than one batch"),
    ("benchmarks/quality.py", ["--gar-comparison", "held_out", "--per-class", "20"],
     "holds out 40 and trains on 160"),
    ("benchmarks/quality.py", ["--min-op-probability", "0.1"],
     "--min-op-probability must be below 1/14"),
    ("benchmarks/overhead.py", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("benchmarks/augment_throughput.py", ["--slots", "0"], "--slots must be >= 1"),
    ("benchmarks/augment_throughput.py", ["--json", "/nonexistent/r.json"], "does not exist"),
    ("benchmarks/soak.py", ["--steps", "1000", "--window", "300"], "must be a multiple"),
    ("benchmarks/soak.py", ["--steps", "1000", "--warmup", "2"], "need at least --warmup + 3"),
]  # fmt: skip


@pytest.mark.parametrize(("script", "flags", "message"), REFUSED)
def test_bad_flags_are_refused_before_anything_runs(script, flags, message):
    status, _, err, imported = run(script, *flags)
    assert status == 2, err
    assert "usage:" in err and message in err, err
    assert not heavy(imported), "refused after importing TensorFlow"


def test_existing_export_folder_is_refused_before_training(tmp_path):
    (tmp_path / "policy").mkdir()
    status, _, err, imported = run("augment_search", "--logdir", str(tmp_path))
    assert status == 2 and "--overwrite to replace it" in err, err
    status, _, err, _ = run("augment_search", "--logdir", str(tmp_path), "--overwrite")
    assert status == 2 and "has no policy.json" in err, err
    assert not heavy(imported)


def test_quality_refuses_runs_with_other_settings_up_front(tmp_path):
    (tmp_path / "q_runs").mkdir()
    (tmp_path / "q_runs" / "fashion_mnist_gar_seed0.json").write_text(
        '{"config": "gar", "settings": {}}'
    )
    status, _, err, imported = run("benchmarks/quality.py", "--out", str(tmp_path / "q"))
    assert status == 2 and "runs made with other settings" in err, err
    assert not heavy(imported)


def test_unknown_ops_refused_before_data_loads(tmp_path):
    """--ops is checked by building the policy (TensorFlow), still before any data."""
    status, _, err, _ = run(
        "augment_search",
        "--ops", "Identity,Nope", "--logdir", str(tmp_path), "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 2 and "unknown augmentation op 'Nope'" in err, err


def _quality_module():
    """benchmarks/quality.py, which is a script, not a package module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    return quality


def test_quality_space_sizes_agree_with_gar_tf():
    import gar_tf

    quality = _quality_module()

    assert {
        name: len(gar_tf.augment.space_ops("standard" if name == "trivialaugment" else name))
        for name in quality.GAR_SPACE_SIZES
    } == quality.GAR_SPACE_SIZES


def test_backbone_names_agree_with_gar_tf():
    import gar_tf
    from gar_tf_trainers import _cli

    assert _cli.BACKBONES == gar_tf.backbones.NAMES
    for name in ("small_cnn", "resnet8", "resnet14_w32", "resnet2", "resnet9", "resnet", "cnn",
                 "resnet8_w", "resnet08", "resnet8_w0", "small_resnet", "wrn16_2", "wrn10_1",
                 "wrn12_1", "wrn4_1", "wrn28", "wrn28_0", "wrn028_10"):  # fmt: skip
        try:
            gar_tf.backbones.from_name(name, (8, 8, 1))
            accepted = True
        except ValueError:
            accepted = False
        assert _cli.backbone_name_ok(name) == accepted, name


def test_quality_reads_the_leading_op_from_a_policy_string():
    """The collapse check parses what AugmentationPolicy.policy_string writes."""
    import numpy as np

    import gar_tf

    quality = _quality_module()

    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Rotate", "Color", "Posterize"], seed=0)
    policy.build((2, 8, 8, 3))
    policy.op_logits.assign(np.log([[7.0, 2.0, 0.5, 0.5]], dtype=np.float32))  # Identity 0.7
    name, probability = quality.leading_op(policy.policy_string())
    assert name == "Rotate" and abs(probability - 0.2) < 1e-3


def test_quality_advantage_table_gives_each_op_its_mean_over_seeds_and_interval():
    quality = _quality_module()
    runs = [
        {
            "seed": s,
            "op_advantages": {"Identity": {"a": a, "se": 0.01}, "Rotate": {"a": b, "se": 0.02}},
        }
        for s, a, b in ((0, 0.01, -0.10), (1, 0.03, -0.06), (2, 0.02, -0.08))
    ]
    lines = quality.advantage_table(runs)
    identity, rotate = lines[-2:]  # sorted by the mean over seeds, best first
    # Rotate: mean -0.08, std 0.02, t_{0.975,2} = 4.303: half-width 4.303 * 0.02 / sqrt(3) = 0.0497
    assert rotate.startswith("| Rotate | -0.100 ± 0.020 | -0.060 ± 0.020 | -0.080 ± 0.020 |")
    assert rotate.endswith("| -0.080 [-0.130, -0.030] |")
    assert identity.startswith("| Identity |") and "+0.020 [" in identity
    assert quality.advantage_table([]) == []


def test_machine_cpu_names_the_widest_vector_isa():
    from gar_tf_trainers import _machine

    amd = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
    intel = "model name\t: Intel(R) Xeon(R) Processor\nflags\t: avx avx2 avx512f avx512bw\n"
    assert _machine.cpu(amd) == "AMD EPYC (avx2)"
    assert _machine.cpu(intel) == "Intel(R) Xeon(R) Processor (avx512f)"
    assert _machine.cpu("model name : Old\nflags : sse2\n") == "Old (no avx)"
    assert _machine.cpu("").endswith(" (no avx)")
