"""Read wandb's offline run files back (``run-<id>.wandb``), as ``wandb sync`` would upload them.

wandb 0.31 has no Python reader left (its Go core reads them), so this is one: the file starts with a
7-byte header (``:W&B``, a 2-byte magic, a version byte), then LevelDB's log format: 32 KiB blocks of
records, each a 7-byte header (CRC32C, little-endian length, type: 1 whole, 2 first, 3 middle, 4 last
piece of a record split across blocks) and its bytes; a block's tail shorter than a header is padding.
Each record is a ``wandb.proto.wandb_internal_pb2.Record``.
"""

import struct
from pathlib import Path

HEADER, BLOCK, PIECE = 7, 32768, 7
WHOLE, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path):
    """Every record of one run file, parsed."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pieces = HEADER, b""
    while pos + PIECE <= len(data):
        left = BLOCK - pos % BLOCK
        if left < PIECE:  # padding at a block's end
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + PIECE])
        if kind == 0 and length == 0:  # zeroed space: the rest of the block is empty
            pos += left
            continue
        chunk, pos = data[pos + PIECE : pos + PIECE + length], pos + PIECE + length
        if kind in (WHOLE, LAST):
            record = pb.Record()
            record.ParseFromString(pieces + chunk if kind == LAST else chunk)
            pieces = b""
            yield record
        else:
            pieces = chunk if kind == FIRST else pieces + chunk


def run_artifacts(root) -> list:
    """One entry per offline run under ``root``: {job_type, group, made: {name: digest}, used: {name: digest},
    metadata: {name: (type, metadata json, {path in the artifact: reference URI or ""})}}; an artifact logged
    with ``use_after_commit`` and as user-created is one the run used (roar.lineage)."""
    runs = []
    for path in sorted(Path(root).rglob("run-*.wandb")):
        run = {"file": path, "job_type": None, "group": None, "made": {}, "used": {}, "metadata": {}}
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["job_type"], run["group"] = record.run.job_type, record.run.run_group
            elif kind == "artifact":
                art = record.artifact
                side = "used" if art.use_after_commit and art.user_created else "made"
                run[side][art.name] = art.digest
                run["metadata"][art.name] = (art.type, art.metadata, {e.path: e.ref for e in art.manifest.contents})
        runs.append(run)
    return runs
