"""Per-image evidence (bench.evidence.ops) and the statistics on it (bench.report.statistics): known answers."""

from __future__ import annotations

import math
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, stats

from bench.evidence import declarations, ops
from bench.evidence.declarations import Array
from bench.evidence.ops import (
    ENTROPY_BINS,
    EvidenceAccumulator,
    MCDropoutAccumulator,
    batch_evidence,
    boundary_iou_counts,
    boundary_region,
    boundary_width,
    curve_points,
    entropy_histograms,
    load_evidence,
    mc_summary,
    running_means,
    save_evidence,
)
from bench.report import statistics as ev

# A population of per-image confusion matrices (rows true pet/background/border, columns
# predicted) for the simulations: each image draws its own cell probabilities around Q.
Q = np.array([[0.30, 0.03, 0.02], [0.02, 0.50, 0.03], [0.02, 0.03, 0.05]])


def simulate(rng: np.random.Generator, shape: tuple[int, ...], pixels: int = 500, spread: float = 50.0) -> np.ndarray:
    """Per-image confusion counts ``(*shape, 3, 3)`` whose expected pooled matrix is ``pixels * Q``."""
    q = rng.dirichlet(spread * Q.ravel(), size=shape)
    return rng.multinomial(pixels, q).reshape(*shape, 3, 3)


def run_evidence(confusion: np.ndarray, index: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return {"confusion": confusion, "image_index": np.arange(len(confusion)) if index is None else index}


# === mIoU conventions ===


def test_pooled_and_per_image_miou_differ_by_the_hand_computed_amount() -> None:
    large_pet_perfect = [[50, 0, 0], [0, 40, 0], [0, 0, 10]]
    small_pet_missed = [[0, 4, 0], [0, 96, 0], [0, 0, 0]]  # no border in truth or prediction
    confusion = np.array([large_pet_perfect, small_pet_missed])
    # Per image: image 1 has IoU 1 for all three classes -> 1. Image 2: pet 0/4 = 0, background
    # 96/(100 + 96 - 96) = 0.96, border 0/0 left out -> (0 + 0.96) / 2 = 0.48. Mean: 0.74.
    assert ev.per_image_miou(confusion) == pytest.approx([1.0, 0.48])
    assert ev.imagewise_miou(confusion) == pytest.approx(0.74)
    # Pooled: [[50, 4, 0], [0, 136, 0], [0, 0, 10]]: pet 50/54, background 136/140, border 10/10.
    pooled = (Fraction(50, 54) + Fraction(136, 140) + 1) / 3
    assert ev.pooled_miou(confusion) == pytest.approx(float(pooled))
    assert ev.pooled_miou(confusion) - ev.imagewise_miou(confusion) == pytest.approx(float(pooled - Fraction(74, 100)))
    # smp's default scores the absent border 1: image 2 -> (0 + 0.96 + 1) / 3, mean (1 + 1.96/3) / 2.
    assert ev.imagewise_miou(confusion, absent_score=1.0) == pytest.approx((1 + 1.96 / 3) / 2)
    # Seeds: the mean of each seed's pooled mIoU; a second seed that finds the small pet scores 1.
    found = np.array([large_pet_perfect, [[4, 0, 0], [0, 96, 0], [0, 0, 0]]])
    assert ev.pooled_miou(np.stack([confusion, found])) == pytest.approx((float(pooled) + 1) / 2)


def test_foreground_iou_ignores_true_border_and_counts_predicted_border_as_not_pet() -> None:
    confusion = np.array([[5, 1, 2], [3, 10, 0], [4, 1, 7]])
    # Rows pet and background only: I = 5; true pet = 5 + 1 + 2 = 8; predicted pet = 5 + 3 = 8;
    # U = 8 + 8 - 5 = 11. The 4 border pixels predicted pet are ignored.
    assert ev.foreground_iou_counts(confusion).tolist() == [5, 11]
    assert ev.pooled_ratio(ev.foreground_iou_counts(np.stack([confusion, confusion]))) == pytest.approx(5 / 11)


# === Resampling ===


def test_bootstrap_interval_covers_the_true_miou_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    truth = float(ev.miou_of(Q))  # E[pooled confusion] = pixels * Q, so the population mIoU is Q's
    datasets = simulate(rng, (200, 50))
    intervals = [ev.miou_interval(d, n_resamples=1000, seed=i) for i, d in enumerate(datasets)]
    coverage = np.mean([iv.low <= truth <= iv.high for iv in intervals])
    assert 0.90 <= coverage <= 0.99


def test_interval_is_byte_identical_over_seeds_and_refuses_few_resamples() -> None:
    rng = np.random.default_rng(1)
    seeds = simulate(rng, (3, 40))
    first, again = ev.miou_interval(seeds), ev.miou_interval(seeds)
    assert first == again and first.n_resamples == ev.N_RESAMPLES
    assert first.estimate == pytest.approx(np.mean([ev.pooled_miou(s) for s in seeds]))
    assert first.low < first.estimate < first.high
    counts = np.stack([rng.integers(0, 50, 40), rng.integers(50, 100, 40)], axis=-1)
    boundary = ev.ratio_interval(counts, seed=7)
    assert boundary == ev.ratio_interval(counts.copy(), seed=7)
    assert boundary.estimate == pytest.approx(counts[:, 0].sum() / counts[:, 1].sum())
    assert boundary.low < boundary.estimate < boundary.high
    with pytest.raises(ValueError, match="at least 1000"):
        ev.miou_interval(seeds, n_resamples=999)


def test_paired_test_finds_a_planted_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(2)
    a = simulate(rng, (40,))
    planted = a.copy()
    moved = planted[:, 0, 0] // 10  # 10% of each image's correct pet pixels become background
    planted[:, 0, 0] -= moved
    planted[:, 0, 1] += moved
    found = ev.paired_test(a, planted)
    assert found.difference > 0 and found.low > 0 and found.p_value < 0.05
    null = ev.paired_test(a, simulate(rng, (40,)))
    assert null.p_value > 0.05 and null.low < 0 < null.high
    assert ev.paired_test(a, a).p_value == 1.0


def test_group_test_is_the_paired_test_for_one_model_a_side_and_compares_family_means() -> None:
    rng = np.random.default_rng(4)
    a, b, c = (simulate(rng, (30,)) for _ in range(3))
    assert ev.paired_group_test([a], [b]) == ev.paired_test(a, b)
    family = ev.paired_group_test([a, b], [c])
    assert family.difference == pytest.approx((ev.pooled_miou(a) + ev.pooled_miou(b)) / 2 - ev.pooled_miou(c))
    assert family.low < family.difference < family.high
    # A family whose every member loses 10% of its correct pet pixels to background, against the
    # same members untouched: found. Against a family of fresh draws from the same images: not.
    worse = []
    for x in (a, b):
        moved = x[:, 0, 0] // 10
        y = x.copy()
        y[:, 0, 0] -= moved
        y[:, 0, 1] += moved
        worse.append(y)
    found = ev.paired_group_test([a, b], worse)
    assert found.difference > 0 and found.low > 0 and found.p_value < 0.05
    null = ev.paired_group_test([a, b], [simulate(rng, (30,)), simulate(rng, (30,))])
    assert null.p_value > 0.05 and null.low < 0 < null.high
    with pytest.raises(ValueError, match="at least one model on each side"):
        ev.paired_group_test([a], [])


def test_paired_test_false_positive_rate_is_about_alpha() -> None:
    rng = np.random.default_rng(3)
    q = rng.dirichlet(50.0 * Q.ravel(), size=(200, 40))  # the images, shared by both models
    a = rng.multinomial(500, q).reshape(200, 40, 3, 3)
    b = rng.multinomial(500, q).reshape(200, 40, 3, 3)
    tests = [ev.paired_test(x, y, n_resamples=1000, seed=i) for i, (x, y) in enumerate(zip(a, b))]
    p = np.array([t.p_value for t in tests])
    assert 0.01 <= np.mean(p < 0.05) <= 0.10


def test_holm_on_a_hand_example() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max makes
    # the last 0.06. Back in input order:
    assert ev.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.5 * 2 = 1.0, then 0.9 * 1 = 0.9 is raised to 1.0 by monotonicity.
    assert ev.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_tied_group_keeps_the_null_model_and_drops_the_worse_one() -> None:
    rng = np.random.default_rng(2)
    a = simulate(rng, (40,))
    worse = a.copy()
    moved = worse[:, 0, 0] // 3  # a third of the correct pet pixels lost
    worse[:, 0, 0] -= moved
    worse[:, 0, 1] += moved
    reverse = np.arange(40)[::-1]
    models = {
        "a": [run_evidence(a)],
        # Two seeds, one stored in another image order: aligned on image_index.
        "b": [run_evidence(simulate(rng, (40,))[reverse], reverse), run_evidence(simulate(rng, (40,)))],
        "worse": [run_evidence(worse)],
    }
    table = ev.tied_with_best(models)
    assert table["rank"].tolist() == [1, 2, 3] and table["model"].iloc[2] == "worse"
    assert table["tied"].tolist() == [True, True, False]
    assert (table["p_holm"].iloc[1:] >= table["p_value"].iloc[1:]).all()
    assert table["difference"].iloc[0] == 0 and (table["difference"].iloc[1:] < 0).all()
    with pytest.raises(ValueError, match="different test images"):
        ev.tied_with_best({"a": [run_evidence(a)], "short": [run_evidence(a[:30])]})


def test_many_models_can_still_be_told_from_the_best() -> None:
    """A bootstrap p-value is at least 2 / (B + 1) and Holm multiplies the smallest by the number of
    comparisons: at 2,000 resamples, 59 comparisons could never go below 0.059, so 60 models far
    below #1 were all called tied with it. The test's resamples grow with the comparisons."""
    assert ev.resamples_for_tests(1) == ev.resamples_for_tests(5) == ev.N_RESAMPLES == 2000
    assert ev.resamples_for_tests(37) == 15000
    assert 2 * 59 / (ev.resamples_for_tests(59) + 1) <= ev.ALPHA / ev.P_RESOLUTION
    rng = np.random.default_rng(6)
    best = simulate(rng, (20,))
    models = {"best": [run_evidence(best)]}
    for k in range(59):
        worse = best.copy()
        moved = worse[:, 0, 0] * (30 + k % 5) // 100  # 30-34% of the correct pet pixels lost
        worse[:, 0, 0] -= moved
        worse[:, 0, 1] += moved
        models[f"worse-{k:02d}"] = [run_evidence(worse)]
    assert ev.tied_with_best(models, n_resamples=2000)["tied"].all()  # the old fixed 2,000: all "tied"
    table = ev.tied_with_best(models)
    assert table["tied"].tolist() == [True] + [False] * 59
    assert table["p_holm"].iloc[1:].max() < ev.ALPHA


# === Which noise a claim covers: seeds and images ===


def test_the_interval_kind_is_named_in_one_place() -> None:
    several = ev.coverage([ev.ModelRuns(np.zeros((3, 2, 3, 3)))])
    one = ev.coverage([ev.ModelRuns(np.zeros((1, 2, 3, 3)))])
    assert ev.interval_kind(several, 3) == ev.INTERVAL_SEEDS_AND_IMAGES == "seeds"
    assert ev.interval_kind(one, 1) == ev.INTERVAL_IMAGES == "bootstrap"
    # Without per-image evidence: Student's t over two or more stored seeds, else none.
    assert [ev.interval_kind(None, n) for n in (0, 1, 2, 5)] == ["", "", "t", "t"]


def test_coverage_needs_two_seeds_of_every_trained_model_and_none_of_a_deterministic_one() -> None:
    one, three = np.zeros((1, 4, 3, 3), int), np.zeros((3, 4, 3, 3), int)
    assert ev.coverage([ev.ModelRuns(three), ev.ModelRuns(three)]) == ev.Coverage(ev.SEEDS_AND_IMAGES, (3,))
    assert ev.coverage([ev.ModelRuns(three), ev.ModelRuns(one, deterministic=True)]).covers_seeds
    assert ev.coverage([ev.ModelRuns(three), ev.ModelRuns(one)]) == ev.Coverage(ev.IMAGES, (1, 3))
    assert ev.coverage([ev.ModelRuns(one), ev.ModelRuns(one)]).describe() == (
        "test images only, one training of each model")
    deterministic = ev.coverage([ev.ModelRuns(one, deterministic=True)] * 2)
    assert not deterministic.covers_seeds
    assert deterministic.describe() == "test images, all the noise of deterministic methods"
    assert ev.coverage([ev.ModelRuns(three)]).describe() == "test images and training seeds (3 seeds)"


def test_one_seed_keeps_the_image_bootstrap_numbers_bit_for_bit() -> None:
    """One seed a model: the percentile bootstrap over images the leaderboard has always shown (these
    are the exact numbers of the harness before seeds entered the claims)."""
    rng = np.random.default_rng(18)
    a, b, c = (simulate(rng, (30,)) for _ in range(3))
    counts = np.stack([rng.integers(0, 50, 30), rng.integers(50, 100, 30)], axis=-1)
    iv = ev.miou_interval(a)
    assert (iv.estimate, iv.low, iv.high) == (0.6574713728283862, 0.6207836195688267, 0.6948325980364463)
    iv = ev.ratio_interval(counts)
    assert (iv.estimate, iv.low, iv.high) == (0.3653153153153153, 0.29735683988855105, 0.43901056535087485)
    t = ev.paired_test(a, b)
    assert (t.difference, t.low, t.high, t.p_value) == (
        0.0010687891841962838, -0.04668476988726505, 0.049154274749150545, 0.9885057471264368)
    t = ev.paired_group_test([a, b], [c], n_resamples=3000)
    assert (t.difference, t.low, t.high, t.p_value) == (
        0.030797958958471816, -0.002583110357469163, 0.06493543381883891, 0.06931022992335888)
    assert t.coverage == ev.Coverage(ev.IMAGES, (1,)) and math.isnan(t.df)


def _constant_images(rng: np.random.Generator, seeds: int, images: int = 25) -> np.ndarray:
    """``(S, N, 3, 3)``: every image of a seed has the same confusion, so resampling the images
    changes nothing and only the seeds vary."""
    per_seed = rng.multinomial(500, rng.dirichlet(50.0 * Q.ravel(), size=seeds)).reshape(seeds, 1, 3, 3)
    return np.repeat(per_seed, images, axis=1)


def test_without_image_noise_the_design_is_welchs_t_test_on_the_seeds() -> None:
    rng = np.random.default_rng(21)
    a, b = _constant_images(rng, 3), _constant_images(rng, 4)
    ours = ev.paired_test(a, b)
    welch = stats.ttest_ind(ev.miou_of(a[:, 0]), ev.miou_of(b[:, 0]), equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert ours.coverage.covers_seeds
    assert ours.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(welch.df, rel=1e-9)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_a_deterministic_side_adds_no_seed_term_a_one_sample_t_test() -> None:
    rng = np.random.default_rng(22)
    trained, classical = _constant_images(rng, 3), _constant_images(rng, 1)
    ours = ev.paired_test(trained, ev.ModelRuns(classical, deterministic=True))
    one_sample = stats.ttest_1samp(ev.miou_of(trained[:, 0]), float(ev.miou_of(classical[0, 0])))
    assert ours.p_value == pytest.approx(one_sample.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(2, rel=1e-9)


def test_monte_carlo_against_one_pass_is_paired_by_seed() -> None:
    """The Monte-Carlo and the deterministic pass of a seed share its weights: their difference
    varies far less over seeds than either does. Paired by seed, without image noise, it is the
    paired t-test; resampling the two sides' seeds independently would drown it in seed noise."""
    rng = np.random.default_rng(23)
    one_pass = _constant_images(rng, 3)
    mc = one_pass.copy()
    mc[..., 0, 0] += 20 + np.arange(3)[:, None]  # MC recovers 20-22 more pet pixels per image
    mc[..., 0, 1] -= 20 + np.arange(3)[:, None]
    paired = ev.paired_test(mc, one_pass, paired_seeds=True)
    reference = stats.ttest_rel(ev.miou_of(mc[:, 0]), ev.miou_of(one_pass[:, 0]))
    assert paired.p_value == pytest.approx(reference.pvalue, rel=1e-9) and paired.p_value < 0.05
    assert ev.paired_test(mc, one_pass).p_value > paired.p_value  # unpaired: the seeds' spread enters
    with pytest.raises(ValueError, match="same seeds"):
        ev.paired_test(mc, one_pass[:2], paired_seeds=True)


# A realistic test set for the simulated null: 98 images of 128 x 128 pixels with their own class
# shares and a difficulty both models share; each training (seed) shifts every image's logit of a
# correct pixel, and each (seed, image) adds its own noise, as different trainings err on
# different images. The image noise gives a one-seed paired standard error of about 0.006 (the
# committed reference's 0.010 at 32 images, scaled to 98); the seed shift is set so that the
# seed-to-seed spread of pooled mIoU is 0.006 or 0.016 (the two cases).
SIM_IMAGES, SIM_SEEDS, SIM_PIXELS = 98, 3, 128 * 128
SIM_SHARE = np.array([0.30, 0.60, 0.10])
SIM_OFFSET = np.array([1.2, 2.2, -0.3])  # the border is the hardest class
SIM_IMAGE_NOISE = 0.2
#: Seed-effect SD in logits -> the spread of pooled mIoU it gives (with the image noise).
SIM_SPREADS = {0.027: 0.006, 0.085: 0.016}


def _test_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    share = rng.dirichlet(20 * SIM_SHARE, size=SIM_IMAGES)
    return rng.multinomial(SIM_PIXELS, share), rng.normal(0.0, 0.8, size=SIM_IMAGES)


def _trainings(rng: np.random.Generator, pixels: np.ndarray, difficulty: np.ndarray, seed_sd: float,
               shift: float = 0.0) -> np.ndarray:
    """``(S, N, 3, 3)`` confusion of S trainings of one model on the test set."""
    logit = (difficulty[None, :, None] + SIM_OFFSET + shift + rng.normal(0.0, seed_sd, (SIM_SEEDS, 1, 1))
             + rng.normal(0.0, SIM_IMAGE_NOISE, (SIM_SEEDS, SIM_IMAGES, 1)))
    correct = rng.binomial(pixels[None], 1 / (1 + np.exp(-logit)))
    wrong = pixels[None] - correct
    first = rng.binomial(wrong, 0.5)
    out = np.zeros((SIM_SEEDS, SIM_IMAGES, 3, 3), dtype=np.int64)
    for c in range(3):
        o1, o2 = (k for k in range(3) if k != c)
        out[..., c, c], out[..., c, o1], out[..., c, o2] = correct[..., c], first[..., c], wrong[..., c] - first[..., c]
    return out


def _simulate_tests(seed_sd: float, shift: float, n: int, rng_seed: int) -> tuple[np.ndarray, float]:
    """p-values of ``n`` simulated comparisons, and the seed spread of pooled mIoU they had."""
    rng = np.random.default_rng(rng_seed)
    p, spread = np.empty(n), []
    for i in range(n):
        pixels, difficulty = _test_set(rng)
        a = _trainings(rng, pixels, difficulty, seed_sd, shift)
        b = _trainings(rng, pixels, difficulty, seed_sd)
        spread.append(np.var(ev.miou_of(b.sum(axis=1)), ddof=1))
        p[i] = ev.paired_test(a, b, n_resamples=ev.MIN_RESAMPLES, seed=i).p_value
    return p, float(np.sqrt(np.mean(spread)))


@pytest.mark.parametrize("seed_sd", list(SIM_SPREADS))
def test_two_models_of_equal_expected_miou_are_called_different_at_most_6_percent(seed_sd: float) -> None:
    """Three seeds each, the seed noise covered: at most 6% false calls at a nominal 5% (the
    former seed-resampling bootstrap made 5.5% and 14.5% here; one seed each, 20% and 61%)."""
    p, spread = _simulate_tests(seed_sd, 0.0, 1000, rng_seed=18)
    assert spread == pytest.approx(SIM_SPREADS[seed_sd], rel=0.15)
    assert np.mean(p < ev.ALPHA) <= 0.06


@pytest.mark.parametrize("seed_sd", list(SIM_SPREADS))
def test_a_difference_of_three_seed_spreads_is_found_most_of_the_time(seed_sd: float) -> None:
    # 0.184: d(pooled mIoU) / d(logit) of this test set, so the shift is 3 spreads of mIoU.
    p, _ = _simulate_tests(seed_sd, 3 * SIM_SPREADS[seed_sd] / 0.184, 200, rng_seed=7)
    assert np.mean(p < ev.ALPHA) >= 0.55


# === Calibration ===


def _probabilities(top_class: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """The first half of the pixels put ``levels[0]`` on ``top_class``, the rest ``levels[1]``."""
    n = top_class.size
    top = np.where(np.arange(n) < n // 2, levels[0], levels[1])
    probs = np.repeat(((1 - top) / 2)[:, None], 3, axis=1)
    probs[np.arange(n), top_class] = top
    return probs


def _sample_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    return (rng.random(probs.shape[:-1])[..., None] > np.cumsum(probs, axis=-1)).sum(axis=-1).clip(0, 2)


def _evidence_of(masks: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    acc = EvidenceAccumulator()
    acc.update(masks, np.log(probs).astype(np.float32))
    return acc.result()


def test_ece_is_near_zero_when_calibrated_and_the_expected_gap_when_overconfident() -> None:
    rng = np.random.default_rng(4)
    shape = (8, 64, 64)
    n = math.prod(shape)
    top_class = rng.integers(0, 3, n)
    truth = _probabilities(top_class, (0.6, 0.8))
    labels = _sample_labels(rng, truth)
    masks = labels.reshape(shape)
    calibrated = _evidence_of(masks, truth.reshape(*shape, 3))
    assert ev.calibration_scores(calibrated)["ece"] < 0.01
    # Overconfident: the same argmax with 0.9 where the truth is 0.6 and 0.95 where it is 0.8;
    # the two land in different bins, so ECE = 0.5 * |0.6 - 0.9| + 0.5 * |0.8 - 0.95| = 0.225.
    sharp = _probabilities(top_class, (0.9, 0.95))
    overconfident = ev.calibration_scores(_evidence_of(masks, sharp.reshape(*shape, 3)))
    assert overconfident["ece"] == pytest.approx(0.225, abs=0.01)
    # NLL and Brier against NumPy on the same pixels.
    onehot = np.eye(3)[labels]
    assert overconfident["nll"] == pytest.approx(-np.log(sharp[np.arange(n), labels]).mean(), rel=1e-4)
    assert overconfident["brier"] == pytest.approx(((sharp - onehot) ** 2).sum(axis=1).mean(), rel=1e-4)


def test_ece_is_near_zero_for_labels_sampled_from_random_predictions() -> None:
    rng = np.random.default_rng(5)
    shape = (8, 128, 128)
    probs = rng.dirichlet([0.5, 0.5, 0.5], size=shape)
    labels = _sample_labels(rng, probs)
    assert ev.calibration_scores(_evidence_of(labels, probs))["ece"] < 0.01


# === Boundary IoU ===


def test_boundary_width_scales_with_the_image_diagonal() -> None:
    # round(0.02 * sqrt(2) * side): 128 -> 3.62 -> 4; 224 -> 6.34 -> 6; 512 -> 14.48 -> 14; 16 -> 0.45 -> 1.
    assert [boundary_width(s) for s in (128, 224, 512, 16)] == [4, 6, 14, 1]
    assert boundary_width((100, 300)) == round(0.02 * math.hypot(100, 300))
    # A mask filling the image: its band is the frame, 2 px deep (the frame counts as contour).
    band = boundary_region(tf.ones((1, 10, 12), tf.bool), 2)
    assert int(tf.reduce_sum(tf.cast(band, tf.int32))) == 10 * 12 - 6 * 8


def _square(shift: int, side: int = 20, size: int = 40) -> np.ndarray:
    mask = np.zeros((1, size, size), dtype=bool)
    mask[0, 10 : 10 + side, 8 + shift : 8 + shift + side] = True
    return mask


def test_boundary_iou_of_identical_and_shifted_squares() -> None:
    # A 20x20 square, band d = 2 (chessboard): |G_d| = 20^2 - 16^2 = 144.
    # Shift by k = 1 column: the 4 rows of the top and bottom bands overlap in 19 columns (76);
    # the 16 middle rows have columns {0,1,18,19} vs {1,2,19,20}: 2 in common (32).
    # I = 108, U = 144 + 144 - 108 = 180, Boundary IoU = 0.6.
    # Shift by k = 3: 4 rows x 17 columns = 68; middle rows {0,1,18,19} vs {3,4,21,22}: none.
    # I = 68, U = 220 (mask IoU would be 340 / 460 = 0.74).
    counts = [boundary_iou_counts(_square(0), _square(k), 2).numpy()[0].tolist() for k in (0, 1, 3)]
    assert counts == [[144, 144], [108, 180], [68, 220]]
    # Through the whole evaluation step: pet = class 0, background 1, band width given.
    masks = np.where(_square(0), 0, 1)
    logits = np.eye(3, dtype=np.float32)[np.where(_square(3), 0, 1)] * 5.0
    acc = EvidenceAccumulator(width=2)
    acc.update(masks, logits)
    acc.update(masks, np.eye(3, dtype=np.float32)[masks] * 5.0)
    result = acc.result()
    assert result["boundary_iou_counts"].tolist() == [[68, 220], [144, 144]]
    assert ev.per_image_boundary_iou(result["boundary_iou_counts"]) == pytest.approx([68 / 220, 1.0])
    assert ev.boundary_iou(result["boundary_iou_counts"]) == pytest.approx((68 + 144) / (220 + 144))


def test_boundary_region_matches_the_reference_erosion() -> None:
    """boundary-iou-api: zero-pad, erode with a 3x3 kernel d times, subtract (here scipy.ndimage)."""
    rng = np.random.default_rng(6)
    blobs = ndimage.gaussian_filter(rng.random((4, 33, 47)), sigma=(0, 3, 3)) > 0.5  # some touch the frame
    for width in (1, 3):
        reference = blobs & ~np.stack([ndimage.binary_erosion(b, np.ones((3, 3)), iterations=width) for b in blobs])
        assert np.array_equal(boundary_region(blobs, width).numpy(), reference)


# === On-device counts ===


def test_per_image_confusion_equals_a_numpy_reference() -> None:
    rng = np.random.default_rng(7)
    masks = rng.integers(0, 3, (5, 12, 20, 1)).astype(np.uint8)
    logits = rng.normal(size=(5, 12, 20, 3)).astype(np.float32)
    acc = EvidenceAccumulator()
    acc.update(masks[:3], logits[:3], image_index=[10, 11, 12])
    acc.update(masks[3:], logits[3:], image_index=[13, 14])
    result = acc.result()
    predicted = logits.argmax(-1)
    expected = np.stack([
        np.bincount(m.ravel() * 3 + p.ravel(), minlength=9).reshape(3, 3) for m, p in zip(masks[..., 0], predicted)
    ])
    assert result["confusion"].dtype == np.int32 and np.array_equal(result["confusion"], expected)
    assert result["image_index"].tolist() == [10, 11, 12, 13, 14]
    assert result["calibration_count"].sum() == masks.size
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, masks.astype(np.int64), axis=-1).sum(axis=(1, 2, 3))
    assert result["nll_sum"] == pytest.approx(nll, rel=1e-5)


def test_the_accumulator_keeps_every_declared_output_and_refuses_an_undeclared_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    masks = rng.integers(0, 3, (4, 8, 8))
    logits = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)

    def accumulate() -> dict[str, np.ndarray]:
        acc = EvidenceAccumulator(width=1)
        acc.update(masks[:3], logits[:3])
        acc.update(masks[3:], logits[3:])
        return acc.result()

    assert set(accumulate()) == {"image_index", "boundary_width", *batch_evidence(masks, logits, 1)}

    def with_pet_pixels(m: tf.Tensor, x: tf.Tensor, width: int) -> dict[str, tf.Tensor]:
        pet = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(x, axis=-1), 0), tf.int32), axis=[1, 2])
        return {**batch_evidence(m, x, width), "pet_pixels": pet, "pet_pixels_total": pet[:, None]}

    # A new output of the device step, declared once: kept per image, or summed to a run total.
    monkeypatch.setattr(ops, "batch_evidence", with_pet_pixels)
    monkeypatch.setattr(declarations, "ARRAYS", (
        *declarations.ARRAYS, Array("pet_pixels", "int32", (), per_image=True),
        Array("pet_pixels_total", "int32", (1,), per_image=False)))
    result = accumulate()
    expected = (logits.argmax(axis=-1) == 0).sum(axis=(1, 2))
    assert result["pet_pixels"].dtype == np.int32 and result["pet_pixels"].tolist() == expected.tolist()
    assert result["pet_pixels_total"].tolist() == [expected.sum()]
    # Undeclared: an error at the first batch, not an array silently dropped.
    monkeypatch.undo()
    monkeypatch.setattr(ops, "batch_evidence", with_pet_pixels)
    with pytest.raises(ValueError, match="'pet_pixels', 'pet_pixels_total', which no declaration claims"):
        EvidenceAccumulator(width=1).update(masks, logits)


def test_evidence_survives_a_save_and_load(tmp_path) -> None:
    rng = np.random.default_rng(8)
    acc = EvidenceAccumulator()
    acc.update(rng.integers(0, 3, (2, 16, 16)), rng.normal(size=(2, 16, 16, 3)).astype(np.float32))
    result = acc.result()
    save_evidence(tmp_path / "evidence.npz", result)
    loaded = load_evidence(tmp_path / "evidence.npz")
    assert loaded.keys() == result.keys()
    assert all(np.array_equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in result.items())
    with pytest.raises(ValueError, match="confusion"):
        save_evidence(tmp_path / "bad.npz", {**result, "confusion": result["confusion"].astype(np.float64)})


# === Uncertainty ===


def test_auroc_from_histograms_matches_the_exact_rank_auroc() -> None:
    rng = np.random.default_rng(9)
    shape = (4, 64, 64)
    probs = tf.nn.softmax(rng.normal(scale=2.0, size=(*shape, 3)).astype(np.float32)).numpy()
    labels = _sample_labels(rng, probs)
    per_image = entropy_histograms(labels, probs).numpy()
    assert per_image.shape == (shape[0], 2, ENTROPY_BINS) and (per_image.sum(axis=(1, 2)) == 64 * 64).all()
    correct, wrong = per_image.sum(axis=0)
    assert entropy_histograms(labels, probs, ignore_border=True).numpy().sum() == (labels != 2).sum()
    entropy = -(probs * np.log(probs)).sum(-1).ravel()
    is_wrong = (probs.argmax(-1) != labels).ravel()
    ranks = stats.rankdata(entropy)
    n_wrong, n_correct = is_wrong.sum(), (~is_wrong).sum()
    exact = (ranks[is_wrong].sum() - n_wrong * (n_wrong + 1) / 2) / (n_wrong * n_correct)
    binned = ev.auroc_from_histograms(correct, wrong)
    resolution = (correct * wrong).sum() / (2 * n_wrong * n_correct)  # the within-bin pairs' share
    assert abs(binned - exact) <= resolution + 1e-4
    assert abs(binned - exact) < 0.01 and exact > 0.6


def test_entropy_histograms_count_a_batch_past_2_24_pixels_exactly() -> None:
    # A float32 sum of ones stops at 2**24 = 16,777,216: this batch has 16,384 pixels more, every
    # one correct and of the same entropy. Counted per image (16,384 pixels each), all are kept.
    n, size = 1025, 128
    probs = tf.broadcast_to(tf.constant([0.9, 0.1]), (n, size, size, 2))
    entropy = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    counts = tf.function(entropy_histograms)(tf.zeros((n, size, size), tf.uint8), probs).numpy()
    expected = np.zeros((2, ENTROPY_BINS), np.int64)
    expected[0, int(entropy * ENTROPY_BINS)] = n * size * size
    assert n * size * size > 2**24
    np.testing.assert_array_equal(counts.reshape(-1, 2, ENTROPY_BINS).sum(axis=0, dtype=np.int64), expected)
    assert counts.shape == (n, 2, ENTROPY_BINS) and counts.dtype == np.int32


def test_pavpu_and_auroc_on_a_hand_example() -> None:
    correct, wrong = np.zeros(ENTROPY_BINS, np.int32), np.zeros(ENTROPY_BINS, np.int32)
    correct[10], correct[80] = 70, 10  # certain (below bin 50 = 0.5 log 3) and uncertain
    wrong[20], wrong[90] = 5, 15
    # n_ac = 70, n_au = 10, n_ic = 5, n_iu = 15: PAvPU = (70 + 15) / 100.
    assert ev.pavpu(correct, wrong) == pytest.approx(0.85)
    # Threshold at bin 15: n_ac = 70, n_iu = 20 -> 0.90.
    assert ev.pavpu(correct, wrong, threshold=0.15) == pytest.approx(0.90)
    # AUROC: the 5 wrong in bin 20 beat 70 correct, the 15 in bin 90 beat all 80: 1550 / 1600.
    assert ev.auroc_from_histograms(correct, wrong) == pytest.approx(1550 / 1600)
    assert ev.uncertainty_scores({"mc_entropy_histogram": np.stack([correct, wrong])})["pavpu"] == pytest.approx(0.85)


def test_running_means_hold_one_sum_and_match_the_full_mean() -> None:
    rng = np.random.default_rng(10)
    samples = tf.nn.softmax(rng.normal(size=(7, 2, 4, 4, 3)).astype(np.float32)).numpy()
    drawn = []

    def stream():
        for s in samples:
            drawn.append(1)
            yield s

    assert curve_points(7) == (1, 2, 5, 7) and curve_points(50) == (1, 2, 5, 10, 20, 50)
    got = list(running_means(stream(), (1, 2, 5)))
    assert [t for t, _ in got] == [1, 2, 5] and len(drawn) == 5  # stops at the last point
    for t, mean in got:
        np.testing.assert_allclose(mean.numpy(), samples[:t].mean(axis=0), rtol=1e-6)
    mean, entropy = mc_summary(samples)
    np.testing.assert_allclose(entropy.numpy(), -(samples.mean(0) * np.log(samples.mean(0))).sum(-1), rtol=1e-5)


def _mc_run(seed: int) -> dict[str, np.ndarray]:
    keras.utils.set_random_seed(seed)  # seeds the weights and the Dropout layer's SeedGenerator
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    data = np.random.default_rng(0)
    images = data.random((2, 16, 16, 3), dtype=np.float32)
    masks = data.integers(0, 3, (2, 16, 16))
    acc = MCDropoutAccumulator(num_samples=10)
    acc.update(masks, (keras.ops.softmax(model(images, training=True)) for _ in range(10)))
    return acc.result()


def test_mc_dropout_sampling_is_reproducible_for_a_seed() -> None:
    first, again, other = _mc_run(3), _mc_run(3), _mc_run(4)
    assert first["mc_curve_samples"].tolist() == [1, 2, 5, 10]
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["mc_entropy_histogram"], other["mc_entropy_histogram"])
    curve = ev.sample_curve(first)
    assert curve["samples"].tolist() == [1, 2, 5, 10] and curve[["miou", "ece"]].notna().all().all()
    assert first["mc_curve_confusion"].sum(axis=(1, 2)).tolist() == [2 * 16 * 16] * 4
    # The host sums the per-image entropy histograms: every pixel once, stored as int32.
    assert first["mc_entropy_histogram"].dtype == np.int32 and first["mc_entropy_histogram"].sum() == 2 * 16 * 16
