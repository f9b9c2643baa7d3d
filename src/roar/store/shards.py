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

from roar.errors import RoarError, write_error
from roar.store.io import file_mode


def encode_key(sample_id: str) -> str:
    return sample_id.replace("%", "%25").replace(".", "%2E")


def decode_key(key: str) -> str:
    return key.replace("%2E", ".").replace("%25", "%")


_NPY_HEADERS = {}


def npy_bytes(array: np.ndarray) -> bytes:
    """The .npy file of ``array`` (what np.save writes), with the header cached per dtype and shape."""
    array = np.ascontiguousarray(array)
    key = (array.dtype.str, array.shape)
    if key not in _NPY_HEADERS:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        _NPY_HEADERS[key] = buf.getvalue()[: -array.nbytes or None]
    return _NPY_HEADERS[key] + array.tobytes()


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


_BLOCK = 512
_RECORD = 20 * _BLOCK  # tar's record size: the archive is padded to a multiple of it, as GNU tar does


def _ustar_header(name: bytes, size: int) -> bytes:
    """A POSIX ustar header for a regular file (mode 0444, uid/gid 0, owner roar, mtime 0)."""
    header = bytearray(
        name.ljust(100, b"\0")
        + b"0000444\0"
        + b"0000000\0"
        + b"0000000\0"
        + b"%011o\0" % size
        + b"00000000000\0"
        + b" " * 8
        + b"0"
        + b"\0" * 100
        + b"ustar\x0000"
        + b"roar".ljust(32, b"\0")
        + b"roar".ljust(32, b"\0")
        + b"0000000\0"
        + b"0000000\0"
        + b"\0" * 155
        + b"\0" * 12
    )
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


class ShardWriter:
    """A tar shard written sample by sample, appearing under its final name only when closed
    without error (temporary file, fsync, rename). ``info`` then holds sha256, count and bytes.

    Members are ``<key>.<field>`` in field order, as webdataset's TarWriter writes them; the
    headers are plain ustar (mtime 0, so equal samples give equal bytes), built directly because
    tarfile's generic header code costs more than the rest of masking. Member names longer than
    ustar's 100 bytes go through tarfile (pax).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.file = os.fdopen(fd, "wb")
        self.hash, self.written = hashlib.sha256(), 0
        self.count, self.info = 0, None

    def _out(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as err:
            self.abort()
            raise write_error(self.path, err) from err
        self.hash.update(data)
        self.written += len(data)

    def write(self, sample: dict) -> None:
        key = sample["__key__"]
        for field in sorted(k for k in sample if k != "__key__"):
            data = sample[field]
            data = data.encode() if isinstance(data, str) else bytes(data)
            name = f"{key}.{field}".encode()
            if len(name) <= 100:
                self._out(_ustar_header(name, len(data)))
            else:
                info = tarfile.TarInfo(name.decode())
                info.size, info.mode, info.uname, info.gname = len(data), 0o444, "roar", "roar"
                self._out(info.tobuf(tarfile.PAX_FORMAT))
            self._out(data)
            if len(data) % _BLOCK:
                self._out(b"\0" * (_BLOCK - len(data) % _BLOCK))
        self.count += 1

    def close(self) -> dict:
        end = 2 * _BLOCK
        end += -(self.written + end) % _RECORD
        self._out(b"\0" * end)
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as err:
            self.abort()
            raise write_error(self.path, err) from err
        os.chmod(self.tmp, file_mode())  # mkstemp's 0600 would hide shards from the rest of a group
        os.replace(self.tmp, self.path)
        self.info = {"sha256": self.hash.hexdigest(), "count": self.count, "bytes": self.written}
        return self.info

    def abort(self) -> None:
        """Drop the unfinished shard: close (a full disk fails the close too), then remove the
        temporary file, so no hidden .tmp keeps the space."""
        try:
            self.file.close()
        except OSError:
            pass
        Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.abort()


def read_shard(path):
    """Samples of one shard as dicts of raw bytes (plus ``__key__``), via webdataset, no decoder
    that unpickles. A corrupt tar raises RoarError naming the file; one cut at a member boundary
    reads as a shorter valid tar, which readers catch by comparing with the manifest's count."""
    path = Path(path)
    if not path.is_file():
        raise RoarError(f"Shard {path} does not exist.")
    try:
        pipeline = wds.WebDataset(
            str(path), shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None
        )
        for sample in pipeline:
            yield {k: v for k, v in sample.items() if k != "__url__" and k != "__local_path__"}
    except (tarfile.TarError, OSError, ValueError, EOFError) as err:
        raise RoarError(
            f"Shard {path} is truncated or corrupt ({err}). Delete it and rerun the stage that wrote it."
        ) from err
