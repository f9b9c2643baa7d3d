"""The report folder's files: CSV tables (with a ``# `` header comment a reader skips) and the record of what
roar-report wrote, so that a later report replaces or deletes only its own files, never the user's."""

import csv
import io
import math
from pathlib import Path

from roar.errors import RoarError
from roar.store.io import atomic_write_bytes, atomic_write_json, read_json


def write_csv(path, columns, rows, comment: str = "") -> Path:
    """Rows as CSV; ``comment``: lines written first, each behind ``# `` (read with ``read_csv``)."""
    buf = io.StringIO()
    for line in comment.splitlines():
        buf.write(f"# {line}\n")
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode())
    return Path(path)


def read_csv(path) -> list:
    """The rows of a report CSV, its ``# `` comment lines skipped."""
    with open(path) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


OWNED = ".roar-report.json"  # the files a report wrote: the only ones a later report replaces or deletes


def report_file(name: str, tables) -> bool:
    """Whether a file of this name is one a report writes: its ``tables``, index.html, a figure."""
    return name in (*tables, "index.html") or name.endswith(".png")


def owned_files(out: Path, tables) -> set:
    """The names of the files roar-report wrote into ``out`` (its record; a report folder written before the
    record existed counts as roar's when its index.html is a roar report). Anything else there is the user's.
    ``tables``: the names of the CSVs a report writes."""
    record = read_json(out / OWNED)
    if isinstance(record, dict):
        return set(record.get("files", []))
    index = out / "index.html"
    if index.is_file() and "<title>roar report:" in index.read_text(errors="replace"):
        return {p.name for p in out.iterdir() if report_file(p.name, tables)}
    return set()


def check_owned(out: Path, tables) -> set:
    """Refuse before writing when ``out`` holds files of the report's names that roar did not write."""
    mine = owned_files(out, tables) if out.is_dir() else set()
    theirs = (
        sorted(p.name for p in out.iterdir() if p.name not in mine and report_file(p.name, tables))
        if out.is_dir()
        else []
    )
    if theirs:
        raise RoarError(
            f"{out} holds files roar-report did not write "
            f"({', '.join(theirs[:5])}{' ...' if len(theirs) > 5 else ''}); "
            f"it replaces and deletes only its own. Move them away, or give the experiment another name (name=...)."
        )
    return mine


def record_owned(out: Path, names) -> None:
    """Record the files this report wrote (``owned_files`` reads it back)."""
    atomic_write_json(out / OWNED, {"files": sorted(names)})
