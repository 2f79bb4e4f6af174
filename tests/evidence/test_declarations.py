"""The declared metrics and arrays (bench.evidence.declarations) and the pet's Dice, precision and
recall (bench.evidence.quality): known answers on hand-computed confusions, and every declaration
read by the rows and the stored format. NumPy only."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bench.evidence import declarations
from bench.evidence.declarations import ARRAYS, METRICS, Array, Column, Metric, metric
from bench.evidence.metrics import evidence_metrics, scores
from bench.evidence.npz import SCHEMA, load_evidence, save_evidence
from bench.evidence.quality import (
    dice_counts,
    foreground_iou_counts,
    pet_confusion,
    pooled_ratio,
    precision_counts,
    ratio,
    recall_counts,
)

# Rows true pet / background / border, columns predicted, one matrix per image.
# A: TP 8, FP 4 (true background predicted pet; the 4 true-border pixels predicted pet are ignored),
#    FN 2 (one pixel predicted background, one border): Dice 16/22, precision 8/12, recall 8/10.
# B: no pet in the truth, none predicted outside the true border: every ratio 0/0, undefined.
# C: TP 3, FP 0, FN 3: Dice 6/9, precision 3/3, recall 3/6.
CONFUSION = np.array([
    [[8, 1, 1], [4, 20, 0], [4, 1, 3]],
    [[0, 0, 0], [0, 30, 0], [2, 0, 5]],
    [[3, 2, 1], [0, 10, 1], [0, 0, 2]],
], dtype=np.int32)
# Summed over images: TP 11, FP 4, FN 5.
POOLED = {"dice_pet": Fraction(22, 31), "precision_pet": Fraction(11, 15), "recall_pet": Fraction(11, 16)}


def _evidence(confusion: np.ndarray = CONFUSION) -> dict[str, np.ndarray]:
    n = len(confusion)
    return {"image_index": np.arange(n, dtype=np.int32), "confusion": confusion.astype(np.int32),
            "boundary_iou_counts": np.tile(np.array([[3, 5]], dtype=np.int32), (n, 1)),
            "boundary_width": np.int32(2)}


# === Dice, precision and recall of the pet ===


def test_pet_counts_ignore_true_border_and_count_predicted_border_as_not_pet() -> None:
    assert pet_confusion(CONFUSION).tolist() == [[8, 4, 2], [0, 0, 0], [3, 0, 3]]
    assert dice_counts(CONFUSION).tolist() == [[16, 22], [0, 0], [6, 9]]
    assert precision_counts(CONFUSION).tolist() == [[8, 12], [0, 0], [3, 3]]
    assert recall_counts(CONFUSION).tolist() == [[8, 10], [0, 0], [3, 6]]


def test_per_image_dice_precision_and_recall_hand_computed() -> None:
    evidence = _evidence()
    nan = float("nan")
    expected = {"dice_pet": [16 / 22, nan, 6 / 9], "precision_pet": [8 / 12, nan, 1.0], "recall_pet": [0.8, nan, 0.5]}
    for name, values in expected.items():
        assert metric(name).per_image_values(evidence) == pytest.approx(values, nan_ok=True), name
    # Image B's two true-border pixels predicted pet are no false positive: its precision is
    # undefined, not 0 as the 3-class convention of iou_pet would make it.
    assert np.isnan(metric("precision_pet").per_image_values(evidence)[1])
    # The mean over the images where Dice is defined (A and C).
    assert metric("dice_pet").per_image_mean(evidence) == pytest.approx((16 / 22 + 6 / 9) / 2)


def test_pooled_dice_precision_and_recall_hand_computed_and_in_the_rows() -> None:
    rows = evidence_metrics(_evidence())
    for name, value in POOLED.items():
        assert rows[name] == (pytest.approx(float(value)), "ratio"), name
    assert rows["dice_pet_per_image"] == (pytest.approx((16 / 22 + 6 / 9) / 2), "ratio")
    # Dice is the harmonic mean of precision and recall, pooled as per image.
    p, r = POOLED["precision_pet"], POOLED["recall_pet"]
    assert POOLED["dice_pet"] == 2 * p * r / (p + r)


def test_pooled_dice_is_two_j_over_one_plus_j_of_the_foreground_iou() -> None:
    rng = np.random.default_rng(3)
    confusion = rng.integers(0, 50, (20, 3, 3))
    j = pooled_ratio(foreground_iou_counts(confusion))
    assert metric("dice_pet").pooled(_evidence(confusion)) == pytest.approx(2 * j / (1 + j))


def test_pet_counts_match_boolean_masks_of_the_pixels() -> None:
    """An independent computation: TP/FP/FN counted on pixel maps with the true border masked out."""
    rng = np.random.default_rng(4)
    true, pred = rng.integers(0, 3, (2, 5, 400))
    confusion = np.stack([np.bincount(t * 3 + p, minlength=9).reshape(3, 3) for t, p in zip(true, pred)])
    kept = true != 2
    tp = ((true == 0) & (pred == 0) & kept).sum(axis=1)
    fp = ((true != 0) & (pred == 0) & kept).sum(axis=1)
    fn = ((true == 0) & (pred != 0)).sum(axis=1)
    assert pet_confusion(confusion).tolist() == np.stack([tp, fp, fn], axis=-1).tolist()
    assert ratio(dice_counts(confusion)) == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_no_pet_anywhere_gives_no_dice_rows() -> None:
    only_background = np.array([[[0, 0, 0], [0, 9, 0], [0, 0, 1]]] * 2, dtype=np.int32)
    rows = evidence_metrics(_evidence(only_background))
    assert not {"dice_pet", "dice_pet_per_image", "precision_pet", "recall_pet"} & set(rows)  # unknown, not 0
    assert rows["miou_per_image"][0] == 1.0


# === The declarations, read by the rows and the format ===


def _every_array(rng: np.random.Generator, n: int = 6) -> dict[str, np.ndarray]:
    """An evidence.npz holding every declared array (one Monte-Carlo curve point): counts drawn at
    random, the rest ones."""
    out = {}
    for name, (dtype, shape, per_image) in SCHEMA.items():
        shape = tuple(1 if s == "P" else s for s in shape)
        out[name] = np.ones((n, *shape) if per_image else shape, dtype=dtype)
    for name in ("confusion", "mc_confusion", "boundary_iou_counts", "mc_boundary_iou_counts"):
        out[name] = rng.integers(1, 50, out[name].shape).astype(np.int32)
    out["image_index"] = np.arange(n, dtype=np.int32)
    return out


def test_every_declared_metric_reads_declared_arrays_and_gives_its_rows() -> None:
    evidence = _every_array(np.random.default_rng(5))
    rows = evidence_metrics(evidence)
    for m in METRICS:
        assert set(m.arrays) <= set(SCHEMA) and m.reads(evidence), m.name
        written = [r for r in m.rows if m.pooled_row or r != m.name]
        assert set(written) <= set(rows), m.name
        if m.pooled_row:
            assert rows[m.name] == (pytest.approx(m.pooled(evidence)), m.unit), m.name
    assert rows["mc_miou"][0] == pytest.approx(metric("mc_miou").statistic(evidence["mc_confusion"].sum(axis=0)))
    # The pooled rows scores() writes are not written twice, and equal the declared statistic.
    assert "miou" not in rows and "pixel_accuracy" not in rows
    summed = scores(evidence["confusion"].sum(axis=0))
    for name in ("miou", "pixel_accuracy"):
        assert metric(name).pooled(evidence) == pytest.approx(summed[name])


def test_the_schema_is_the_declared_arrays_and_save_refuses_an_undeclared_one(tmp_path) -> None:
    assert list(SCHEMA) == [a.name for a in ARRAYS]
    mirrored = [a.name for a in ARRAYS if a.monte_carlo]
    assert mirrored == ["confusion", "boundary_iou_counts", "nll_sum", "brier_sum"]
    assert all(SCHEMA[f"mc_{name}"] == SCHEMA[name] for name in mirrored)
    evidence = _evidence()
    save_evidence(tmp_path / "ok.npz", evidence)
    assert load_evidence(tmp_path / "ok.npz").keys() == evidence.keys()
    with pytest.raises(ValueError, match="'dice_counts' are not declared"):
        save_evidence(tmp_path / "bad.npz", {**evidence, "dice_counts": dice_counts(evidence["confusion"])})


def test_contradicting_declarations_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Metric("dice_pet2", "ratio", ("confusion",), ratio, 1, dice_counts, columns=(Column("Dice", interval=True),))
    monkeypatch.setattr(declarations, "METRICS", (*METRICS, bad))
    with pytest.raises(ValueError, match="shows an interval it has not"):
        declarations._check()
    monkeypatch.setattr(declarations, "METRICS", (*METRICS, Metric("x", "ratio", ("dice_counts",), ratio, 1)))
    with pytest.raises(ValueError, match="reads undeclared arrays: dice_counts"):
        declarations._check()
    monkeypatch.setattr(declarations, "METRICS", METRICS)
    monkeypatch.setattr(declarations, "ARRAYS", (*ARRAYS, Array("confusion", "int32", (3, 3), per_image=True)))
    with pytest.raises(ValueError, match="array declared twice: confusion"):
        declarations._check()


def test_an_unknown_metric_names_the_nearest() -> None:
    with pytest.raises(KeyError, match="did you mean 'dice_pet'"):
        metric("dice")
