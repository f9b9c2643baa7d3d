"""Per-channel mean and std of a training split, computed once and cached next to the data.

The mean is ROAR's fill value (section 4.1: replaced "with the per channel mean"), the pair is the
model's input normalization.
"""

import os
from pathlib import Path

from torch.utils.data import DataLoader

from roar.data.base import TensorImageDataset
from roar.store.io import atomic_write_json, read_json
from roar.utils.progress import progress


def compute_channel_stats(dataset, batch_size: int = 256, num_workers: int = 0):
    """(mean, std) lists over every pixel of every image of ``dataset``, in float64."""
    if isinstance(dataset, TensorImageDataset):
        images = dataset.images.double()
        return images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist()
    total = total_sq = None
    count = 0
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    with progress(len(loader), f"channel statistics of {dataset.name}", "batch", leave=False) as bar:
        for batch in loader:
            x = batch["image"].double()
            s, sq = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += x.shape[0] * x.shape[2] * x.shape[3]
            bar.update(1)
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).mul(count / max(count - 1, 1)).sqrt()
    return mean.tolist(), std.tolist()


def cache_location(dataset, data_cfg, cache_dir) -> Path:
    """Next to the data when its folder is writable, else in ``cache_dir``; named by the data's fingerprint."""
    name = f"stats-{dataset.name}-{dataset.fingerprint()[:16]}.json"
    root = data_cfg.get("root")
    if root:
        folder = Path(str(root)).expanduser() / ".roar-cache"
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            pass
        if (folder / name).is_file() or os.access(folder, os.W_OK):  # probed before the pass: read-only falls back
            return folder / name
    return Path(cache_dir) / name


def channel_stats(dataset, data_cfg, cache_dir):
    """Cached ``{"mean": [...], "std": [...]}`` of the training split ``dataset``."""
    path = cache_location(dataset, data_cfg, cache_dir)
    cached = read_json(path)
    if cached and len(cached.get("mean", [])) == dataset[0]["image"].shape[0]:
        return cached
    mean, std = compute_channel_stats(dataset, num_workers=int(data_cfg.get("num_workers", 0)))
    stats = {"mean": mean, "std": [max(s, 1e-6) for s in std], "count": len(dataset)}
    try:
        atomic_write_json(path, stats)
    except OSError:  # a read-only file system the probe could not see (as root, permission bits say nothing)
        atomic_write_json(Path(cache_dir) / path.name, stats)
    return stats
