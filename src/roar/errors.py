"""The one exception type users see: a readable paragraph, raised before any long work starts."""

import contextlib
import errno
import shutil
import sys
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

# a write the disk refused: full, over quota, read-only, or not ours
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class RoarError(Exception):
    """Bad input (config, data root, checkpoint): the message says what was wrong and what to do."""


def unknown_name(kind: str, name: str, valid) -> RoarError:
    """Error for a name that is not registered, listing the valid ones."""
    return RoarError(
        f"Unknown {kind} '{name}'. Valid {kind} names: {', '.join(sorted(valid))}. "
        f"Choose one of them on the command line ({kind}=NAME) or register your own."
    )


def check_probability(key: str, value, what: str = "a probability") -> float:
    """A config value that must lie in [0, 1] (a probability, a fraction), or an error naming the key."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise RoarError(f"{key}={value!r} is not a number; it must be {what} in [0, 1].") from None
    if not 0.0 <= p <= 1.0:
        raise RoarError(f"{key}={value} is outside [0, 1]; it is {what}. Set it to a value in [0, 1].")
    return p


def free_space(path) -> str:
    """ "1.23 GiB free there" for the disk of ``path`` (its nearest existing folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 2**30:.2f} GiB free there"
    except OSError:
        return "free space unknown"


def write_error(path, err: OSError) -> RoarError:
    """A write the disk refused, with the path and the free space: the cause a user can act on."""
    return RoarError(
        f"Could not write {path}: {err.strerror or err} ({free_space(path)}). Nothing half-written was kept; "
        f"finished work is. Free some space or make it writable (or set paths.output_root elsewhere), then run the "
        f"same command again to resume."
    )


@contextlib.contextmanager
def reported(command: str):
    """Bad input ends a command with its one-paragraph message and exit status 2, a write the disk refused
    (full, read-only) with its paragraph and exit status 1; no traceback either way."""
    try:
        yield
    except RoarError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except OmegaConfBaseException as err:  # a config value that does not resolve or a key that is not there
        message = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
        print(f"{command}: error: the config: {message}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        print(f"{command}: error: {write_error(err.filename or 'a file', err)}", file=sys.stderr)
        sys.exit(1)


def as_list(value, key: str) -> list:
    """A config value that must be a list (``attribute.estimators=[grad,ig]``), or an error saying how
    to write it: ``key=grad`` without brackets is a string, which would be read letter by letter."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise RoarError(f"{key}={value} must be a list: write {key}=[{value}] (brackets, comma-separated).")
    return list(value)


def positive_int(value, key: str) -> int:
    """A config value that must be a whole number >= 1 (a batch size, a count of epochs)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or str(number) != str(value).strip() or number < 1:
        raise RoarError(f"{key}={value!r} must be a whole number of at least 1.")
    return number
