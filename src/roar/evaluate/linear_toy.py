"""The linear toy of the masking-explanations paper (appendix F, Theorem 5.1): why a total-variation
constraint makes saliency masks sound.

A linear classifier f(x) = sgn(<w, x>) with ||w|| = 1, on unit-norm inputs classified with margin
gamma (y <w, x> = gamma for every example, coordinates O(1/sqrt(d)) as the appendix assumes).
Masking sets the non-salient coordinates to 0, so a salient set S certifies the label a when
a * sum_{i in S} w_i x_i > 0. Two saliency methods with |S| = L:

- ``top``: the L coordinates with the largest a * w_i * x_i. It certifies a = y, and also a = -y for
  nearly every input (complete, unsound): any input has coordinates that vote against its label.
- ``interval``: any interval of L consecutive coordinates (TV(S) <= 2) whose sum certifies a. A
  certifying interval for y exists once L is of order 1/gamma^2 (completeness), while the share of
  inputs with an interval certifying -y vanishes as L grows (soundness), by a Chernoff bound over
  the intervals.

Numpy only; seconds. ``run_linear_toy`` returns, for every L, the shares of inputs for which each
method certifies y and -y.
"""

import numpy as np


def make_problem(rng, n: int, d: int, gamma: float):
    """w (d,), inputs x (n, d) of unit norm with y <w, x> = gamma exactly, labels y in {-1, +1}."""
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    y = rng.choice([-1, 1], size=n)
    u = rng.standard_normal((n, d))
    u -= np.outer(u @ w, w)  # orthogonal to w
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x = gamma * y[:, None] * w[None] + np.sqrt(1 - gamma**2) * u
    return w, x, y


def certifies_top(votes: np.ndarray, length: int) -> np.ndarray:
    """Per input: do the ``length`` largest votes (a * w_i * x_i) sum above 0."""
    top = -np.sort(-votes, axis=1)[:, :length]
    return top.sum(1) > 0


def certifies_interval(votes: np.ndarray, length: int) -> np.ndarray:
    """Per input: does some interval of ``length`` consecutive coordinates have a vote sum above 0."""
    sums = np.cumsum(np.pad(votes, ((0, 0), (1, 0))), axis=1)
    return (sums[:, length:] - sums[:, :-length]).max(1) > 0


def run_linear_toy(n: int = 500, d: int = 1000, gamma: float = 0.3, lengths=(1, 10, 30, 100, 300, 500), seed: int = 0):
    """{"lengths", "top": {"y": shares, "-y": shares}, "interval": {...}}: shares of the n inputs certified."""
    rng = np.random.default_rng(seed)
    w, x, y = make_problem(rng, n, d, gamma)
    votes = {"y": y[:, None] * w[None] * x, "-y": -y[:, None] * w[None] * x}
    out = {"n": n, "d": d, "gamma": gamma, "seed": seed, "lengths": list(lengths)}
    for name, method in (("top", certifies_top), ("interval", certifies_interval)):
        out[name] = {a: [float(method(v, int(L)).mean()) for L in lengths] for a, v in votes.items()}
    return out
