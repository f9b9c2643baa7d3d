"""``fastnet``: the airbench94 network (Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
arXiv 2404.00498, section 3.1 and its reference ``airbench94.py``), written here from that description.

A 2x2 patch-whitening convolution (frozen weights set from the training data's patch covariance,
section 3.2; trainable bias), GELU, three conv groups (conv 3x3 -> max-pool 2 -> BatchNorm -> GELU ->
conv 3x3 -> BatchNorm -> GELU) of widths (w, 4w, 4w), a global max-pool and a bias-free linear layer
scaled by 1/9. BatchNorms have frozen unit weights, trainable biases, momentum 0.6 (PyTorch's 0.4),
eps 1e-12; every 3x3 convolution starts as an identity on its first channels (dirac initialization,
section 3.3). The last max-pool is global (the reference's ``MaxPool2d(3)`` on its 3x3 maps on 32x32
inputs is the same), so 16x16 and larger inputs work.
"""

import torch
import torch.nn as nn

from roar.errors import RoarError
from roar.models.registry import register_model


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    def __init__(self, channels: int, momentum: float):
        super().__init__(channels, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad_(False)


class DiracConv(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)
        nn.init.dirac_(self.weight.data[: min(c_in, c_out)])


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__(
            DiracConv(c_in, c_out),
            nn.MaxPool2d(2),
            FrozenScaleBatchNorm(c_out, bn_momentum),
            nn.GELU(),
            DiracConv(c_out, c_out),
            FrozenScaleBatchNorm(c_out, bn_momentum),
            nn.GELU(),
        )


class FastNet(nn.Module):
    def __init__(self, num_classes, in_channels, width=64, whiten_kernel=2, bn_momentum=0.6, scale=1 / 9):
        super().__init__()
        k = int(whiten_kernel)
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * k * k, kernel_size=k, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        widths = (width, 4 * width, 4 * width)
        self.body = nn.Sequential(
            nn.GELU(),
            ConvGroup(self.whiten.out_channels, widths[0], bn_momentum),
            ConvGroup(widths[0], widths[1], bn_momentum),
            ConvGroup(widths[1], widths[2], bn_momentum),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = float(scale)

    def forward(self, x):
        # the global max-pool as a reduction: deterministic on CUDA, unlike AdaptiveMaxPool2d's backward
        return self.head(self.body(self.whiten(x)).amax(dim=(2, 3))) * self.scale

    @property
    def feature_layer(self) -> nn.Module:
        """The last feature block (Grad-CAM's layer: captum-LayerGradCam)."""
        return self.body[-1]

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen first layer from normalized training ``images`` (N, C, H, W): the eigenvectors of
        the covariance of their k x k patches, scaled by 1/sqrt(eigenvalue + eps), and their negatives
        (airbench94.py, ``init_whitening_conv``)."""
        c, k = images.shape[1], self.whiten.kernel_size[0]
        patches = images.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c, k, k).double()
        flat = patches.reshape(len(patches), -1)
        values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat))
        values, vectors = values.flip(0), vectors.T.reshape(-1, c, k, k).flip(0)
        scaled = vectors / torch.sqrt(values.clamp(min=0) + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat([scaled, -scaled]).to(self.whiten.weight))


@register_model("fastnet")
def build_fastnet(num_classes, in_channels, image_size, width: int = 64, whiten_kernel: int = 2, **params):
    if image_size < 16:
        raise RoarError(
            f"model=fastnet needs images of at least 16x16 (three 2x down-samplings); these are "
            f"{image_size}x{image_size}. "
            "Upsample them (data.image_size=32 for digits) or pick model=resnet8."
        )
    return FastNet(num_classes, in_channels, width=width, whiten_kernel=whiten_kernel, **params)
