"""What every roar dataset is: images in [0, 1], labels, stable per-sample ids, class names."""

import hashlib

from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """Map-style dataset yielding ``{"image": CxHxW float in [0, 1], "label": int, "index": int}``.

    ``ids[i]`` is the stable id of sample ``i``: the key that joins an image with its estimator
    maps and its masked copies in later stages, whatever the order or split of the work.
    Subclasses fill ``name``, ``split``, ``classes``, ``ids`` and implement ``load(i)``.
    """

    name: str
    split: str
    classes: list
    ids: list

    def __len__(self):
        return len(self.ids)

    def load(self, i: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, i):
        sample = self.load(i)
        sample["index"] = i
        return sample

    def encoded(self, i: int) -> tuple | None:
        """(extension, bytes) of sample ``i``'s source file where the dataset decodes files, else None."""
        return None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        return tuple(self[0]["image"].shape)

    def fingerprint(self) -> str:
        """sha256 over the name, split, image shape and every sample id: changes when the data do."""
        h = hashlib.sha256(f"{self.name}|{self.split}|{tuple(self[0]['image'].shape)}".encode())
        for sid in self.ids:
            h.update(sid.encode())
            h.update(b"\0")
        return h.hexdigest()


class TensorImageDataset(ImageDataset):
    """An in-memory dataset: ``images`` (N, C, H, W) float in [0, 1], ``labels`` (N,), optional extra
    per-sample tensors (e.g. ground-truth masks) returned under their own keys."""

    def __init__(self, name, split, images, labels, ids, classes, extras=None):  # noqa: PLR0913 (a dataset's fields)
        self.name, self.split, self.classes = name, split, list(classes)
        self.images, self.labels, self.ids = images, labels, list(ids)
        self.extras = dict(extras or {})
        assert len(self.images) == len(self.labels) == len(self.ids)

    def load(self, i):
        sample = {"image": self.images[i], "label": int(self.labels[i])}
        for key, values in self.extras.items():
            sample[key] = values[i]
        return sample
