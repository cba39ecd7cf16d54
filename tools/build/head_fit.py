"""The maths of an intent head: multinomial logistic regression (scikit-learn, L-BFGS), one
temperature (scipy), and the scores the build reports (scikit-learn's accuracy, macro-F1 and
confusion matrix; the expected calibration error, which scikit-learn does not have, in
numpy)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

MAX_ITERATIONS = 5000
CONFUSION_PAIRS = 5
# The temperature is searched for between these, on a log scale.
TEMPERATURE_RANGE = (0.05, 20.0)

Scores = npt.NDArray[np.float64]
Labels = npt.NDArray[np.intp]


@dataclass(frozen=True)
class HeadFit:
    c: float
    weights: npt.NDArray[np.float32]
    """(embedding size, labels)"""
    bias: npt.NDArray[np.float32]
    temperature: float
    grid: tuple[tuple[float, float, float], ...]
    """(C, valid accuracy, valid NLL) for each C tried."""


def fit_head(
    x_train: Scores,
    y_train: Labels,
    x_valid: Scores,
    y_valid: Labels,
    c_grid: Sequence[float],
) -> HeadFit:
    """Fit each C on train (warm-started from the previous C), keep the best on valid (ties
    to the lower NLL), then fit the temperature on valid."""
    grid: list[tuple[float, float, float]] = []
    best: tuple[float, float, float, Scores, Scores] | None = None
    model = LogisticRegression(solver="lbfgs", max_iter=MAX_ITERATIONS, tol=1e-6, warm_start=True)
    for c in sorted(c_grid):
        model.set_params(C=c)
        with warnings.catch_warnings():
            # Near-separable data at a large C stops at the iteration limit a hair from the
            # optimum: the valid split, not the optimiser, decides which C is kept.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train)
        w = np.asarray(model.coef_, dtype=np.float64).T
        b = np.asarray(model.intercept_, dtype=np.float64)
        logits = x_valid @ w + b
        score = (accuracy(logits, y_valid), mean_nll(logits, y_valid))
        grid.append((c, *score))
        if best is None or (score[0], -score[1]) > (best[1], -best[2]):
            best = (c, *score, w, b)
    assert best is not None, "the C grid is empty"
    c, _, _, w, b = best
    weights, bias = w.astype(np.float32), b.astype(np.float32)
    # Calibrated on the float32 arrays the npz ships, as the device runs them.
    shipped = x_valid @ weights.astype(np.float64) + bias.astype(np.float64)
    temperature = float(np.float32(fit_temperature(shipped, y_valid)))
    return HeadFit(c, weights, bias, temperature, tuple(grid))


def fit_temperature(logits: Scores, labels: Labels) -> float:
    """The T in TEMPERATURE_RANGE minimising the NLL of softmax(logits / T), by a bounded
    Brent search on log T (the NLL is convex in 1/T, so it has a single minimum there)."""
    lowest, highest = TEMPERATURE_RANGE
    found = minimize_scalar(
        lambda log_t: mean_nll(logits / math.exp(log_t), labels),
        bounds=(math.log(lowest), math.log(highest)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return math.exp(float(found.x))


def softmax_rows(logits: Scores) -> Scores:
    probabilities: Scores = softmax(logits, axis=1)
    return probabilities


def mean_nll(logits: Scores, labels: Labels) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits)."""
    return float(-log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def accuracy(scores: Scores, labels: Labels) -> float:
    """Share of rows whose highest score (logit or probability) is the true label's."""
    return float(accuracy_score(labels, scores.argmax(axis=1)))


def macro_f1(labels: Labels, predicted: Labels) -> float:
    """Mean F1 over the classes that occur in labels or predictions; a class predicted but
    never true scores 0."""
    return float(f1_score(labels, predicted, average="macro", zero_division=0.0))


def expected_calibration_error(probabilities: Scores, labels: Labels, bins: int) -> float:
    """Sum over equal-width confidence bins (lo, hi] of |accuracy - confidence|, weighted by
    the bin's share of the examples; confidence is the top class's probability."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.intp) - 1, 0, bins - 1)
    # Per bin, |sum(correct) - sum(confidence)| / n is its weighted gap.
    gaps = np.bincount(which, correct, bins) - np.bincount(which, confidence, bins)
    return float(np.abs(gaps).sum() / len(labels))


def confusion_pairs(labels: Labels, predicted: Labels, names: Sequence[str]) -> list[list[Any]]:
    """The most frequent (true, predicted, count) mistakes, most frequent first."""
    counts = confusion_matrix(labels, predicted, labels=range(len(names)))
    np.fill_diagonal(counts, 0)
    true, guess = np.nonzero(counts)
    ranked = sorted(
        zip((-counts[true, guess]).tolist(), true.tolist(), guess.tolist(), strict=True)
    )
    return [[names[t], names[g], -negative] for negative, t, g in ranked[:CONFUSION_PAIRS]]


def head_probabilities(
    head: tuple[npt.NDArray[Any], npt.NDArray[Any], float], x: npt.NDArray[Any]
) -> Scores:
    weights, bias, temperature = head
    logits = x.astype(np.float64) @ weights.astype(np.float64) + bias.astype(np.float64)
    return softmax_rows(logits / temperature)


def head_scores(probabilities: Scores, labels: Labels, bins: int) -> dict[str, float]:
    return {
        "accuracy": round(accuracy(probabilities, labels), 6),
        "macro_f1": round(macro_f1(labels, probabilities.argmax(axis=1)), 6),
        "ece": round(expected_calibration_error(probabilities, labels, bins), 6),
    }
