"""Per-sample seeding: a sample's random draws depend on (seed, sample id, stream) alone, never on
its batch, shard, worker or device. Map noise, tie-breaks, random rankings and donors use it."""

import hashlib

import torch


def sample_seed(seed: int, sample_id: str, stream: str = "") -> int:
    """A 63-bit seed for one sample: its draws depend on (seed, id), not on batch, shard or device."""
    digest = hashlib.sha256(f"{int(seed)}|{stream}|{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def per_sample(seed: int, ids, stream: str, shape, fn=torch.rand) -> torch.Tensor:
    """Stack ``fn(shape)`` drawn from each sample's own CPU generator."""
    return torch.stack([fn(shape, generator=torch.Generator().manual_seed(sample_seed(seed, i, stream))) for i in ids])
