"""The CIFAR networks the papers trained, at their published sizes (parameter counts for 10 classes, tested):

- ``vgg16``: VGG16 with batch normalization (overinterpretation S1: "uses batch normalization and contains
  14.7M parameters"); the CIFAR form of kuangliu/pytorch-cifar (13 conv3x3-BN-ReLU, five max-pools, one linear
  layer on the 512 features).
- ``preact_resnet18``: the "v2" ResNet18 (He et al. 2016b, pre-activation; overinterpretation S1: "64 initial
  filters and contains 11.2M parameters", 3x3 stem, stride 1, no initial pooling), ending in v2's final
  BN-ReLU (11,172,170 parameters; kuangliu's form without it has 11,171,146).
- ``preact_resnet164``: the pre-activation bottleneck ResNet-164 of bearpaw/pytorch-classification (the masking
  paper's appendix D.1, footnote 16), 18 bottleneck blocks per stage at widths 16, 32, 64 (x4), 1.7M parameters.
- ``wide_resnet``: Wide-ResNet-d-k (Zagoruyko & Komodakis 2016; (d - 4) / 6 pre-activation basic blocks per
  stage at widths 16k, 32k, 64k); the default d = 34, k = 10 is the layout of Madry et al.'s adversarially
  trained CIFAR-10 model (overinterpretation Fig. 1; five residual units per stage at 160, 320, 640 filters).
"""

import torch.nn as nn

from roar.errors import RoarError
from roar.models.registry import register_model

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, layout=VGG16):
        super().__init__()
        layers, channels = [], in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # = floor at 32x32; smaller images keep 1x1
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # 1x1 already at 32x32 (five pools); any other size pooled to it
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))

    @property
    def feature_layer(self) -> nn.Module:
        """The last convolutional block's activation (Grad-CAM's layer), before the last pool."""
        return self.features[-2]


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice, the shortcut taken after the first BN-ReLU when it projects (He et al. 2016b)."""

    expansion = 1

    def __init__(self, channels: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(channels), nn.Conv2d(channels, planes, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = None
        if stride != 1 or channels != planes:
            self.shortcut = nn.Conv2d(channels, planes, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.drop(self.relu(self.bn2(out))))
        return out + skip


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (the stride), BN-ReLU-conv1x1 to 4x the planes (bearpaw's preresnet)."""

    expansion = 4

    def __init__(self, channels: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        out = planes * self.expansion
        self.bn1, self.conv1 = nn.BatchNorm2d(channels), nn.Conv2d(channels, planes, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(planes), nn.Conv2d(planes, out, 1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = None
        if stride != 1 or channels != out:
            self.shortcut = nn.Conv2d(channels, out, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + skip


class PreActResNet(nn.Module):
    """A 3x3 stem (stride 1, no pooling), pre-activation stages, a final BN-ReLU, global pooling, one linear layer."""

    def __init__(self, num_classes, in_channels, block, blocks, widths, stem: int = 16, dropout: float = 0.0):  # noqa: PLR0913 (the network's layout)
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        channels, stages = stem, []
        for stage, (n, planes) in enumerate(zip(blocks, widths, strict=True)):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                stages.append(block(channels, planes, stride, dropout))
                channels = planes * block.expansion
        self.layers = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.head(self.layers(self.stem(x)))).flatten(1))

    @property
    def feature_layer(self) -> nn.Module:
        """The final BN-ReLU (Grad-CAM's layer): the last features, activated."""
        return self.head


@register_model("vgg16")
def build_vgg16(num_classes, in_channels, image_size):
    return VGG(num_classes, in_channels)


@register_model("preact_resnet18")
def build_preact_resnet18(num_classes, in_channels, image_size):
    return PreActResNet(num_classes, in_channels, PreActBlock, (2, 2, 2, 2), (64, 128, 256, 512), stem=64)


@register_model("preact_resnet164", params={"depth": 164})
def build_preact_resnet164(num_classes, in_channels, image_size, depth: int = 164):
    """bearpaw's ``preresnet`` with bottlenecks: depth = 9n + 2 (n blocks per stage), 164 by default."""
    if (depth - 2) % 9:
        raise RoarError(f"model.params.depth={depth}: a bottleneck pre-activation ResNet has depth 9n + 2 (164: n=18).")
    n = (depth - 2) // 9
    return PreActResNet(num_classes, in_channels, PreActBottleneck, (n, n, n), (16, 32, 64))


@register_model("wide_resnet", params={"depth": 34, "widen": 10, "dropout": 0.0})
def build_wide_resnet(num_classes, in_channels, image_size, depth: int = 34, widen: int = 10, dropout: float = 0.0):
    """WRN-depth-widen: depth = 6n + 4 (n basic blocks per stage), widths 16 x widen, 32 x widen, 64 x widen."""
    if (depth - 4) % 6:
        raise RoarError(f"model.params.depth={depth}: a Wide-ResNet has depth 6n + 4 (28: n=4, 34: n=5).")
    n, k = (depth - 4) // 6, int(widen)
    return PreActResNet(num_classes, in_channels, PreActBlock, (n, n, n), (16 * k, 32 * k, 64 * k), dropout=dropout)
