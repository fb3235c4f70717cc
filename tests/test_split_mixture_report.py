"""split_mixture_report: the checks each table row states, on hand-made records."""

import math

from gar_tf_trainers import split_mixture_report as report


def _record(names, rates, final, trace):
    runs = [
        {
            "run": "gar",
            "seed": 0,
            "test_accuracy": 0.9,
            "final_probabilities": dict(zip(names, final)),
            "probability_trace": [{"step": s, **dict(zip(names, p))} for s, p in trace],
        }
    ]
    return {"noise_rates": rates, "steps_per_pass": 100, "runs": runs}


def test_a_white_noise_split_is_checked_like_a_random_label_split():
    names = ["0:noise", "1:clean", "2:clean", "3:clean"]
    trace = [(10, [0.25] * 4), (20, [0.09, 0.31, 0.3, 0.3]), (30, [0.05, 0.32, 0.31, 0.32])]
    (row,) = report.gar_rows(_record(names, [0.0] * 4, [0.05, 0.32, 0.31, 0.32], trace))
    assert "worst < 0.100: step 20 (0.20 passes); ordered: yes; clean spread 0.010" in row


def test_splits_of_clean_data_report_their_spread():
    names = ["0:small", "1:duplicate", "2:clean", "3:clean"]
    trace = [(10, [0.25] * 4), (20, [0.4, 0.3, 0.15, 0.15])]
    (row,) = report.gar_rows(_record(names, [0.0] * 4, [0.3, 0.3, 0.2, 0.2], trace))
    assert "spread 0.100 (largest on the way 0.250)" in row


def test_paired_difference_interval():
    d = report.paired([0.9, 0.8, 0.7], [0.8, 0.8, 0.6])  # differences 0.1, 0, 0.1
    assert math.isclose(d["mean"], 0.2 / 3)
    std = math.sqrt(((0.1 - 0.2 / 3) ** 2 * 2 + (0.2 / 3) ** 2) / 2)
    assert math.isclose(d["std"], std)
    assert math.isclose(d["high"] - d["mean"], 4.303 * std / math.sqrt(3))
