"""Controls that never look at the model (ROAR section 4.1): a random ranking and a Sobel edge filter."""

import hashlib

import torch
import torch.nn.functional as F


def sample_seed(seed: int, sample_id: str, stream: str = "") -> int:
    """A 63-bit seed for one sample: its draws depend on (seed, id), not on batch, shard or device."""
    digest = hashlib.sha256(f"{int(seed)}|{stream}|{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def per_sample(seed: int, ids, stream: str, shape, fn=torch.rand) -> torch.Tensor:
    """Stack ``fn(shape)`` drawn from each sample's own CPU generator."""
    return torch.stack([fn(shape, generator=torch.Generator().manual_seed(sample_seed(seed, i, stream))) for i in ids])


def random_map(x, ids, seed):
    """Uniform [0, 1) scores per element, reproducible per (seed, sample id)."""
    return per_sample(seed, ids, "random", tuple(x.shape[1:])).to(x.device, x.dtype)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_map(x, ids, seed):
    """Sobel gradient magnitude per channel (replicate padding, so image borders are not edges)."""
    c = x.shape[1]
    kx = _SOBEL_X.to(x.device, x.dtype).expand(c, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.hypot(F.conv2d(padded, kx, groups=c), F.conv2d(padded, ky, groups=c))


CONTROLS = {"random": random_map, "sobel": sobel_map}
