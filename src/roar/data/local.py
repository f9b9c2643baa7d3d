"""Datasets read from a local ``data.root`` (never downloaded): CIFAR-10/100, Food-101, any class-per-folder tree.

All splits get the same deterministic preprocessing, resize then center crop (ROAR section 4.2
applies the test-time preprocessing to train and test images before ranking); training
augmentation happens later, on batches (``roar.augment``).
"""

import hashlib
import io
import multiprocessing
import zlib
from pathlib import Path

from omegaconf import OmegaConf
from PIL import Image
from torchvision import datasets, transforms

from roar.data.base import ImageDataset
from roar.data.registry import register_dataset
from roar.errors import RoarError

ON_ERROR = ("raise", "skip")


class LocalImageDataset(ImageDataset):
    """A torchvision dataset behind the roar interface: [0, 1] tensors, stable ids, class names.

    An image file that cannot be read stops the run with its path (``data.on_error=raise``), or
    (``skip``) is replaced by the next readable sample and counted in ``skipped`` (metrics.json's
    ``skipped_samples``), never hidden."""

    def __init__(self, name, split, base, ids, classes, transform, on_error="raise"):  # noqa: PLR0913 (a dataset's fields)
        self.name, self.split, self.base = name, split, base
        self.ids, self.classes, self.transform = list(ids), list(classes), transform
        if on_error not in ON_ERROR:
            raise RoarError(f"data.on_error={on_error!r}; valid: {', '.join(ON_ERROR)}.")
        self.size = None  # (C, H, W) every sample must have: the first one's (same_size)
        self.on_error, self.skipped = (
            on_error,
            multiprocessing.get_context("spawn").Value("i", 0),
        )  # shared with spawned ranks too

    def file(self, i) -> Path | None:
        """Sample ``i``'s image file, where the torchvision dataset reads files (not CIFAR's arrays)."""
        samples = getattr(self.base, "samples", None) or getattr(self.base, "_image_files", None)
        return Path(samples[i][0] if isinstance(samples[i], tuple) else samples[i]) if samples else None

    def upsampling_note(self, cfg) -> str | None:
        """One line when ``data.resize``/``data.crop`` blow the source images up at least twofold (a 48x48
        photo trained at 224x224 costs about 20x the time and adds no detail), saying how to train at their
        size; None otherwise, or where the dataset reads no files. Reads the first image's header only."""
        file, crop = self.file(0) if len(self) else None, cfg.get("crop")
        if file is None or not crop:
            return None
        with Image.open(file) as image:
            side = min(image.size)
        if side * 2 > int(crop):
            return None
        return (
            f"[roar-train] note: the images under {file.parent.parent} are about {side}x{side} pixels (first: "
            f"{file.name}), "
            f"and data.resize={cfg.get('resize')} data.crop={crop} upsample them {int(crop) / side:.1f}x: much "
            f"slower to "
            f"train, no more detail. To train at their size: data.resize={side} data.crop={side}."
        )

    SAMPLED = 64  # files whose bytes enter the fingerprint, spread evenly over the split

    def fingerprint(self) -> str:
        """The base fingerprint (name, split, shape, ids) plus, where the dataset reads files, every file's
        size and the bytes of ``SAMPLED`` files spread over the split: two folders with the same file names
        are told apart (a base model trained on one is never taken for the other's) without reading all."""
        h = hashlib.sha256(super().fingerprint().encode())
        if self.file(0) is not None:
            n = len(self)
            for i in range(n):
                h.update(f"{self.file(i).stat().st_size}\0".encode())
            for i in sorted({k * n // self.SAMPLED for k in range(min(n, self.SAMPLED))}):
                h.update(hashlib.sha256(self.file(i).read_bytes()).digest())
        return h.hexdigest()

    def same_size(self, image, k: int):
        """``image`` (sample ``k``'s), after checking it has the first sample's size: the images of a split are
        batched together, so without ``data.crop`` photos of other shapes would fail later, in a stack."""
        if self.size is None:
            self.size = tuple(image.shape) if k == 0 else tuple(self.transform(self.base[0][0]).shape)
        if tuple(image.shape) != self.size:
            (_, h, w), (_, h0, w0) = image.shape, self.size
            raise RoarError(
                f"{self.path(k)} is {h}x{w} pixels after resizing, but {self.path(0)} is {h0}x{w0}: the images of a "
                f"dataset must come out at one size. Pass data.crop=<side> (for example data.crop={min(h, w, h0, w0)}"
                f") to center-crop every image to one square."
            )
        return image

    def path(self, i) -> str:
        file = self.file(i)
        return str(file) if file else f"sample {self.ids[i]}"

    def encoded(self, i):
        """The source file's bytes (JPEG, PNG, ...) when the dataset reads files and stops on an unreadable
        one (with ``data.on_error=skip`` a sample may be its neighbour's image: no bytes then)."""
        file = self.file(i)
        if file is None or self.on_error != "raise":
            return None
        return file.suffix.lstrip(".").lower() or "img", file.read_bytes()

    def load(self, i):
        for k in (j % len(self) for j in range(i, i + len(self))):
            try:
                image, label = self.base[k]
                return {"image": self.same_size(self.transform(image), k), "label": int(label)}
            except (OSError, SyntaxError, ValueError) as err:  # truncated or not an image at all
                if self.on_error == "raise":
                    raise RoarError(
                        f"{self.path(k)} cannot be read as an image ({err}). Replace or delete it, or pass "
                        f"data.on_error=skip."
                    ) from err
                with self.skipped.get_lock():
                    self.skipped.value += 1
        raise RoarError(f"data={self.name}: no image of the {self.split} split can be read.")


def preprocess(cfg):
    """Resize then center crop (each optional), then to a float tensor in [0, 1]. With ``data.corner`` (the masking
    paper's Imagenette-Corner, appendix C, footnote 12: "we take one of the four 180x180-pixel corners and resize it
    to 224x224"), the crop is a corner of that side, resized to ``data.crop``."""
    steps = []
    if cfg.get("resize"):
        steps.append(transforms.Resize(int(cfg.resize)))
    if cfg.get("corner"):
        steps.append(CornerCrop(int(cfg.corner)))
        if cfg.get("crop"):
            steps.append(transforms.Resize((int(cfg.crop), int(cfg.crop))))
    elif cfg.get("crop"):
        steps.append(transforms.CenterCrop(int(cfg.crop)))
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


class CornerCrop:
    """One of the image's four corners of ``side`` x ``side`` pixels, chosen from the image's own pixels (a CRC of
    them): the same image gets the same corner wherever it is read (the dataset, a shard's stored source file),
    and the four corners are drawn about equally often over a dataset."""

    def __init__(self, side: int):
        self.side = side

    def __call__(self, image):
        w, h = image.size
        if min(w, h) < self.side:
            raise RoarError(f"data.corner={self.side} is larger than the resized image ({w}x{h}); lower data.corner.")
        corner = zlib.crc32(image.convert("RGB").tobytes()) % 4
        left, top = (w - self.side) * (corner % 2), (h - self.side) * (corner // 2)
        return image.crop((left, top, left + self.side, top + self.side))


class SourceDecoder:
    """The decoding of a stored source file (``encoded``) into the image the dataset gives: PIL, RGB (as
    torchvision's loaders), then the dataset's resize and crop (``transform``: a set's
    ``source_transform``). A class, not a closure: DataLoader workers may pickle it."""

    def __init__(self, transform: dict):
        self.steps = preprocess(OmegaConf.create(dict(transform)))

    def __call__(self, ext: str, data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            return self.steps(image.convert("RGB"))


def require_root(cfg, expected: str, how: str) -> Path:
    """``data.root`` as a Path, or an error saying what was expected where and how to provide it."""
    if not cfg.get("root"):
        raise RoarError(
            f"data={cfg.name} reads from a local folder, but data.root is not set. "
            f"Pass data.root=/path/to/folder holding {expected}. {how}"
        )
    root = Path(str(cfg.root)).expanduser()
    if not (root / expected).exists():
        raise RoarError(
            f"data={cfg.name}: expected {root / expected} but it does not exist. {how} "
            f"Then pass data.root=<the folder that holds {expected}>. roar never downloads data."
        )
    return root


def _checked(cfg, make):
    """Build a torchvision dataset, turning its 'not found / corrupted' errors into ours."""
    try:
        return make()
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise RoarError(f"data={cfg.name}, data.root={cfg.root}: the files there could not be read ({err}).") from err


@register_dataset("cifar10")
def build_cifar10(cfg, split):
    return _cifar(cfg, split, datasets.CIFAR10, "cifar-10-batches-py", "cifar10")


@register_dataset("cifar100")
def build_cifar100(cfg, split):
    return _cifar(cfg, split, datasets.CIFAR100, "cifar-100-python", "cifar100")


def _cifar(cfg, split, cls, folder, name):
    how = (
        f"Download the CIFAR 'python version' archive on a machine with internet and extract it so that "
        f"{folder}/ exists."
    )
    root = require_root(cfg, folder, how)
    base = _checked(cfg, lambda: cls(str(root), train=split == "train", download=False))
    ids = [f"{name}-{split}-{i:05d}" for i in range(len(base))]
    return LocalImageDataset(name, split, base, ids, base.classes, preprocess(cfg))


@register_dataset("food101")
def build_food101(cfg, split):
    how = "Extract the Food-101 archive so that food-101/images/ and food-101/meta/ exist."
    root = require_root(cfg, "food-101/meta", how)
    base = _checked(cfg, lambda: datasets.Food101(str(root), split=split, download=False))
    images_dir = root / "food-101" / "images"
    ids = [str(Path(p).relative_to(images_dir).with_suffix("")) for p in base._image_files]
    return LocalImageDataset("food101", split, base, ids, base.classes, preprocess(cfg), cfg.get("on_error", "raise"))


def class_folders(folder: Path) -> list:
    """The class names of a class-per-folder tree: its sub-folders, sorted (torchvision's rule)."""
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())


class NamedClassFolder(datasets.ImageFolder):
    """An ImageFolder whose labels come from a given class list (the training split's), by name."""

    def __init__(self, root, classes):
        self.given = list(classes)
        super().__init__(root)

    def find_classes(self, directory):
        return self.given, {c: i for i, c in enumerate(self.given)}


@register_dataset("imagefolder")
def build_imagefolder(cfg, split):
    """``<root>/<train_dir>/<class>/<image>`` and ``<root>/<test_dir>/<class>/<image>``. Classes are
    numbered from the training folder alone; the test folder must hold the same class names, else the
    error lists the differences (a misspelt or missing class would shift every label silently)."""
    train_dir, folder = str(cfg.get("train_dir", "train")), str(cfg.get(f"{split}_dir", split))
    how = (
        f"Lay the images out as <root>/{folder}/<class name>/<image file> "
        f"(ImageNet's train/ and val/ after the usual val re-sort, Imagenette, Birdsnap, ...)."
    )
    root = require_root(cfg, folder, how)
    classes = class_folders(require_root(cfg, train_dir, how) / train_dir)
    if len(classes) < 2:
        raise RoarError(
            f"data=imagefolder: {root / train_dir} holds {len(classes)} class folder(s) ({classes}); a classifier "
            f"needs at least 2. {how}"
        )
    if folder != train_dir:
        found = class_folders(root / folder)
        if found != classes:
            only_train, only_test = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
            raise RoarError(
                f"data=imagefolder: the class folders of {root / folder} differ from those of {root / train_dir} "
                f"(only in {train_dir}/: {only_train or 'none'}; only in {folder}/: {only_test or 'none'}). Labels "
                f"come from "
                f"{train_dir}/ by name: rename or add folders so both hold the same classes."
            )
    base = _checked(cfg, lambda: NamedClassFolder(str(root / folder), classes))
    ids = [str(Path(p).relative_to(root).with_suffix("")) for p, _ in base.samples]
    return LocalImageDataset(
        "imagefolder", split, base, ids, base.classes, preprocess(cfg), cfg.get("on_error", "raise")
    )
