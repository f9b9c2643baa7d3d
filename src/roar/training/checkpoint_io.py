"""Checkpoints written atomically: a complete ``last.ckpt`` or the previous one, never a truncated file.

Lightning's own save writes through an fsspec transaction whose temporary file may live on another
disk and is then copied into place, so a disk that fills up during that copy can leave a cut-off
checkpoint under the final name. Here the bytes take roar's one atomic write (roar.store.io: a
temporary file in the checkpoint's own folder, flushed, then one rename); a failed write removes its
temporary file and raises the disk's error, which the command reports in one paragraph
(roar.errors.reported).
"""

import io

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from roar.store.io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{self.__class__.__name__} takes no storage_options.")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())
