"""The torch device a config's ``trainer.accelerator`` names, for stages that run outside a Trainer."""

import torch

from roar.errors import RoarError


def resolve_device(accelerator: str = "auto") -> torch.device:
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise RoarError(
                f"trainer.accelerator={accelerator} but no GPU is visible here. Use trainer.accelerator=cpu or auto."
            )
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    if accelerator == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    raise RoarError(f"trainer.accelerator={accelerator!r}: use auto, cpu, gpu or mps.")
