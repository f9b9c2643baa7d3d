"""ResNets: torchvision's ResNet-18/50 (optionally with the small-image stem) and a CIFAR-style small ResNet."""

import torch.nn as nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock

from roar.errors import RoarError
from roar.models.registry import register_model


def _adapt_stem(net, in_channels: int, small_stem: bool):
    """Small-image stem (FPA appendix A: 3x3 conv, stride 1, padding 1, no max-pool) and channel count."""
    if small_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


@register_model("resnet18")
def build_resnet18(num_classes, in_channels, image_size, small_stem: bool = False):
    return _adapt_stem(resnet18(weights=None, num_classes=num_classes), in_channels, small_stem)


@register_model("resnet50")
def build_resnet50(num_classes, in_channels, image_size, small_stem: bool = False):
    return _adapt_stem(resnet50(weights=None, num_classes=num_classes), in_channels, small_stem)


class SmallResNet(nn.Module):
    """He et al. (2016) CIFAR ResNet of depth 6n+2: a 3x3 stem and three stages of n basic blocks
    at widths (w, 2w, 4w), strides (1, 2, 2); the overinterpretation paper's ResNet20 is n=3, w=16."""

    def __init__(self, num_classes, in_channels, blocks_per_stage: int, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers, channels = [], width
        for stage, stride in enumerate((1, 2, 2)):
            out = width * 2**stage
            for b in range(blocks_per_stage):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or channels != out:
                    down = nn.Sequential(nn.Conv2d(channels, out, 1, stride=s, bias=False), nn.BatchNorm2d(out))
                layers.append(BasicBlock(channels, out, stride=s, downsample=down))
                channels = out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    @property
    def feature_layer(self) -> nn.Module:
        """The last feature block (Grad-CAM's layer: captum-LayerGradCam)."""
        return self.layers[-1]


@register_model("resnet8")
def build_resnet8(num_classes, in_channels, image_size, width: int = 16):
    return SmallResNet(num_classes, in_channels, blocks_per_stage=1, width=width)


@register_model("resnet20")
def build_resnet20(num_classes, in_channels, image_size, width: int = 16):
    return SmallResNet(num_classes, in_channels, blocks_per_stage=3, width=width)


AUXILIARY_HEADS = ("inception_v3", "googlenet")


@register_model("torchvision", params={"arch": "resnet18", "transform_input": False})
def build_torchvision(num_classes, in_channels, image_size, arch: str = "resnet18", transform_input: bool = False):
    """Any torchvision classification architecture by name, randomly initialized (weights are never
    downloaded): with ``base_checkpoint=<a local weights file>`` a pretrained base model (e.g. arch=resnet50,
    vit_b_16). A ViT is built for ``image_size``. Inception-v3 and GoogLeNet are built without their
    auxiliary classifiers (``aux_logits=False``, as the overinterpretation paper trains Inception-v3, S1; a
    checkpoint's auxiliary weights are left out on loading); ``transform_input=true`` is what torchvision
    sets for its pretrained weights of them (their published accuracy needs it)."""
    from torchvision.models import get_model, list_models

    valid = list_models(module=__import__("torchvision").models)
    if arch not in valid:
        raise RoarError(
            f"model.params.arch={arch!r} is not a torchvision classification model; valid: {', '.join(valid)}."
        )
    if in_channels != 3:
        raise RoarError(
            f"model=torchvision takes 3-channel images; data has {in_channels} (use model=resnet18 or resnet8)."
        )
    extra = {"image_size": image_size} if arch.startswith("vit_") else {}
    if arch in AUXILIARY_HEADS:  # one output in training too; torchvision's pretrained weights set transform_input
        extra = {"aux_logits": False, "init_weights": True, "transform_input": bool(transform_input)}
    return get_model(arch, weights=None, num_classes=num_classes, **extra)
