"""What every roar-eval measurement of one base model shares, bound once by roar.evaluate.run."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalContext:
    """The config, the base model (its key and its checkpoint's sha256), the test and training data, the
    evaluated test indices, the bound fill (a BoundFill) and the device."""

    cfg: object
    model: object
    key: object  # BaseKey
    ckpt_sha: str
    test_set: object
    train_set: object
    indices: list
    fill: object
    device: object
