"""The simulated classifier world: per row, true class probabilities, a label, and predictions.

Binary: true logit η = logit(0.3) + 1.5·z, z ~ N(0, 1), P(class 1) = σ(η). Three classes: logits
η_k = log(0.5, 0.3, 0.2)_k + z_k, z_k ~ N(0, 1) independent, p = softmax(η). The label is drawn
from p. Stable predicts softmax(η + 0.5·ε) (ε ~ N(0, 1) on the second logit for binary, on every
logit for three classes): calibrated-ish, noisy. The canary predicts softmax((η + 0.5·ε' + c·e_j)
/ T), ε' drawn like stable's: T < 1 makes it over-confident (its log loss rises), c moves class
j's logit (j = 1 for binary, 2 for three classes) so that class's mean probability moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.release.window import EPSILON

NOISE_SD = 0.5
CASES = {  # class count -> (base logits, score scale)
    2: (np.array([0.0, np.log(0.3 / 0.7)]), 1.5),
    3: (np.log(np.array([0.5, 0.3, 0.2])), 1.0),
}
CLASS_NAMES = {2: ("no", "yes"), 3: ("a", "b", "c")}


@dataclass(frozen=True)
class Predictor:
    """How one arm turns a row's true logits into probabilities."""

    temperature: float = 1.0
    offset: float = 0.0  # added to the shifted class's logit before the temperature


def shifted_class(k: int) -> int:
    return k - 1


def watched(k: int) -> list[int]:
    """The probability columns the product's shift check watches (`Scoring.classifier`)."""
    return [1] if k == 2 else list(range(k))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def true_logits(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    base, scale = CASES[k]
    if k == 2:
        out = np.zeros((n, 2))
        out[:, 1] = base[1] + scale * rng.standard_normal(n)
        return out
    return base + scale * rng.standard_normal((n, k))


def noise(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    if k == 2:
        out = np.zeros((n, 2))
        out[:, 1] = NOISE_SD * rng.standard_normal(n)
        return out
    return NOISE_SD * rng.standard_normal((n, k))


def predict(logits: np.ndarray, eps: np.ndarray, arm: Predictor) -> np.ndarray:
    z = logits + eps
    if arm.offset:
        z[:, shifted_class(z.shape[1])] += arm.offset
    if arm.temperature != 1.0:
        z = z / arm.temperature
    return softmax(z)


def labels_of(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """One class index per row, drawn from its true probabilities."""
    u = rng.random(truth.shape[0])
    return np.minimum((np.cumsum(truth, 1) < u[:, None]).sum(1), truth.shape[1] - 1)


def log_loss(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row log loss as `Scoring.classifier` computes it: -log p(true class), clipped."""
    chosen = proba[np.arange(labels.size), labels]
    return -np.log(np.clip(chosen, EPSILON, 1.0))


@dataclass
class Sample:
    """A large sample of rows with common random numbers, to solve and measure scenarios."""

    k: int
    logits: np.ndarray
    eps: np.ndarray
    labels: np.ndarray

    @classmethod
    def draw(cls, k: int, n: int, seed: int) -> Sample:
        rng = np.random.default_rng(seed)
        logits = true_logits(rng, k, n)
        eps = noise(rng, k, n)
        return cls(k, logits, eps, labels_of(rng, softmax(logits)))

    def loss(self, arm: Predictor) -> float:
        return float(log_loss(predict(self.logits, self.eps, arm), self.labels).mean())

    def means(self, arm: Predictor) -> np.ndarray:
        return predict(self.logits, self.eps, arm).mean(0)


def _bisect(f, low: float, high: float, steps: int = 30) -> float:
    """The root of an increasing f on [low, high]."""
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < 0 else (low, mid)
    return (low + high) / 2


def solve(sample: Sample, loss_increase: float = 0.0, mean_shift: float = 0.0) -> Predictor:
    """The canary whose log loss is (1 + loss_increase)× stable's, or whose shifted class's
    mean probability is `mean_shift` above stable's, on `sample`."""
    if loss_increase:
        target = sample.loss(Predictor()) * (1 + loss_increase)
        t = _bisect(lambda x: sample.loss(Predictor(temperature=1 / x)) - target, 1.0, 20.0)
        return Predictor(temperature=1 / t)
    if mean_shift:
        j = shifted_class(sample.k)
        target = sample.means(Predictor())[j] + mean_shift
        return Predictor(offset=_bisect(lambda c: sample.means(Predictor(offset=c))[j] - target,
                                        0.0, 5.0))  # fmt: skip
    return Predictor()


def measure(sample: Sample, arm: Predictor) -> dict:
    """The canary's true effect on an independent sample: log loss vs stable's, and each watched
    class's mean probability shift in stable's SDs (the shift check's unit)."""
    stable = predict(sample.logits, sample.eps, Predictor())
    canary = predict(sample.logits, noise(np.random.default_rng(1), sample.k, sample.eps.shape[0]),
                     arm)  # fmt: skip
    ls, lc = log_loss(stable, sample.labels).mean(), log_loss(canary, sample.labels).mean()
    cols = watched(sample.k)
    shift = (canary[:, cols].mean(0) - stable[:, cols].mean(0)) / stable[:, cols].std(0, ddof=1)
    return {
        "stable_log_loss": float(ls),
        "canary_log_loss": float(lc),
        "log_loss_increase": float(lc / ls - 1),
        "mean_shift": [float(x) for x in canary[:, cols].mean(0) - stable[:, cols].mean(0)],
        "shift_sd": [float(x) for x in shift],
        "max_abs_shift_sd": float(np.abs(shift).max()),
    }
