"""WebDataset shards: atomic, reproducible tar writing and pickle-free reading.

A shard is a POSIX tar (``tar -tf`` lists it) whose members are ``<key>.<field>``; a sample is
the group of members sharing a key. Keys are sample ids with '.' and '%' escaped (webdataset cuts
keys at the first dot of a member's name). Members are written with mtime 0, so the same samples
give the same bytes and the same sha256.
"""

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import webdataset as wds

from roar.errors import RoarError


def encode_key(sample_id: str) -> str:
    return sample_id.replace("%", "%25").replace(".", "%2E")


def decode_key(key: str) -> str:
    return key.replace("%2E", ".").replace("%25", "%")


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """A tar shard written sample by sample, appearing under its final name only when closed
    without error (temporary file, fsync, rename). ``info`` then holds sha256, count and bytes."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.file = os.fdopen(fd, "wb")
        self.sink = wds.TarWriter(self.file, encoder=False, mtime=0.0, user="roar", group="roar")
        self.count, self.info = 0, None

    def write(self, sample: dict) -> None:
        self.sink.write(sample)
        self.count += 1

    def close(self) -> dict:
        self.sink.close()  # closes the file too
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        self.info = {"sha256": sha256_file(self.path), "count": self.count, "bytes": self.path.stat().st_size}
        return self.info

    def abort(self) -> None:
        try:
            self.sink.close()
        except Exception:
            pass
        Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.abort()


def write_shard(path, samples) -> dict:
    """Write ``samples`` (dicts of ``__key__`` plus field -> bytes) to the tar ``path`` atomically.
    Returns ``{"sha256", "count", "bytes"}`` of the written file."""
    with ShardWriter(path) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.info


def read_shard(path):
    """Samples of one shard as dicts of raw bytes (plus ``__key__``), via webdataset, no decoder
    that unpickles. A truncated or corrupt tar raises RoarError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise RoarError(f"Shard {path} does not exist.")
    try:
        with tarfile.open(path) as tar:  # webdataset stops quietly at a truncated end; tarfile does not
            for _ in tar:
                pass
        pipeline = wds.WebDataset(str(path), shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None)
        for sample in pipeline:
            yield {k: v for k, v in sample.items() if k != "__url__" and k != "__local_path__"}
    except (tarfile.TarError, OSError, ValueError, EOFError) as err:
        raise RoarError(f"Shard {path} is truncated or corrupt ({err}). Delete it and rerun the stage that wrote it.") from err
