"""ROAR's toy check (ROAR section 3, Fig. 2): why a removal metric needs retraining.

16 features, 4 informative: x = a z / 10 + d eta + eps / 10, y = (z > 0), with z, eta, eps standard
normal per example and a (zero after the first 4 entries), d drawn once per dataset. A least-squares
model fits +-1 labels. Three rankings of the features: ground truth (|a| descending, the informative
four first), its inverse (the worst possible estimate), and random. For every fraction k/16 the
top-ranked features are replaced by 0 (their mean, an uninformative value) in train and test data;
the accuracy of the unchanged model ("no retraining") and of a model refitted on the masked training
data (ROAR) are recorded, over ``seeds`` datasets.

The paper's result: without retraining the inverted ranking degrades accuracy early (the model
used the uninformative features to cancel the shared noise eta); with retraining it stays flat until
the informative features go at 75%.
"""

import numpy as np

RANKINGS = ("ground_truth", "inverted", "random")


def make_dataset(rng, n: int, a, d):
    z = rng.standard_normal(n)
    x = np.outer(z, a) / 10 + np.outer(rng.standard_normal(n), d) + rng.standard_normal((n, len(a))) / 10
    return x, (z > 0).astype(int)


def fit_least_squares(x, y):
    """Weights (with bias) minimizing ||[x 1] w - (2y - 1)||; constant (removed) columns get weight 0."""
    design = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.lstsq(design, 2.0 * y - 1.0, rcond=None)[0]


def accuracy(w, x, y) -> float:
    return float(((np.hstack([x, np.ones((len(x), 1))]) @ w > 0).astype(int) == y).mean())


def feature_rankings(a, rng) -> dict:
    """Feature order, most important first, for every ranking; ties among the zero entries of a are
    broken by one random permutation shared by ground truth and its inverse."""
    shuffle = rng.permutation(len(a))
    gt = shuffle[np.argsort(-np.abs(a[shuffle]), kind="stable")]
    return {"ground_truth": gt, "inverted": gt[::-1].copy(), "random": rng.permutation(len(a))}


def mean_curves(toy: dict) -> dict:
    """{(ranking, "retrain" | "no_retrain"): accuracy per fraction, mean over the datasets}."""
    return {
        (name, kind): np.mean(curves, 0).tolist()
        for name, kinds in toy["accuracy"].items()
        for kind, curves in kinds.items()
    }


def run_toy(
    features: int = 16, informative: int = 4, n_train: int = 5000, n_test: int = 5000, seeds=(0, 1, 2, 3, 4)
) -> dict:
    """{"fractions": [...], "accuracy": {ranking: {"retrain"|"no_retrain": [[per fraction] per seed]}}}."""
    fractions = [k / features for k in range(features + 1)]
    out = {r: {"retrain": [], "no_retrain": []} for r in RANKINGS}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        a = np.zeros(features)
        a[:informative] = rng.standard_normal(informative)
        d = rng.standard_normal(features)
        (xtr, ytr), (xte, yte) = make_dataset(rng, n_train, a, d), make_dataset(rng, n_test, a, d)
        base = fit_least_squares(xtr, ytr)
        for name, order in feature_rankings(a, rng).items():
            retrain, no_retrain = [], []
            for k in range(features + 1):
                keep = np.ones(features)
                keep[order[:k]] = 0.0
                no_retrain.append(accuracy(base, xte * keep, yte))
                retrain.append(accuracy(fit_least_squares(xtr * keep, ytr), xte * keep, yte))
            out[name]["retrain"].append(retrain)
            out[name]["no_retrain"].append(no_retrain)
    return {
        "fractions": fractions,
        "features": features,
        "informative": informative,
        "seeds": list(seeds),
        "accuracy": out,
    }
