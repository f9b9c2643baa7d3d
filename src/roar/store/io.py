"""Atomic writes (a file appears complete under its final name or not at all) and folder locks."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from roar.errors import RoarError, free_space

_UMASK = os.umask(0)
os.umask(_UMASK)


def file_mode() -> int:
    """The mode a plain new file gets under this process's umask (0644 under umask 022)."""
    return 0o666 & ~_UMASK


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide results from the rest of a group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(root, probe_bytes: int = 1 << 16) -> None:
    """Refuse, naming the folder and its free space, when ``root`` (or its nearest existing parent, where it
    would be made) cannot take a small file: a read-only or full disk, found before anything starts
    there (Hydra's log file among the first). Permission bits are not enough to ask (root ignores them):
    a probe file is written and removed."""
    folder = Path(root)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".roar-probe-") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise RoarError(
            f"Cannot write under {Path(root).resolve()} ({folder}: {err.strerror or err}; {free_space(folder)}). "
            f"Free some space or make it writable, or set paths.output_root=<a folder you can write>."
        ) from None


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path):
    """A JSON file's content, or None when it is missing or not valid JSON (an interrupted write)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


LOCK = ".roar.lock"


@contextlib.contextmanager
def folder_lock(folder, what: str = "run"):
    """An advisory lock (``fcntl.flock``) on ``folder/.roar.lock`` for as long as the block runs, holding the
    owner's PID: a second process on the same folder is refused with that PID instead of resuming from the
    first one's live checkpoint and writing the same files. Only global rank 0 takes it (the other ranks of
    a DDP run work on the same folder by design)."""
    rank = next((int(os.environ[k]) for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if k in os.environ), 0)
    if rank != 0:
        yield
        return
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise RoarError(
                f"{folder} is in use by another roar process (PID {owner}), which is training this {what} now. "
                f"Wait for it to finish (a rerun then skips or resumes), or stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
