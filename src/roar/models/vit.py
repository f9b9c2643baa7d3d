"""Vision Transformer whose ``forward(x, keep=None)`` drops the tokens of removed patches.

Missingness paper (Jain et al. 2022), appendix B: after tokenization the removed patches' tokens
are dropped, not zeroed; kept tokens keep their positional embedding; a batch whose samples keep
different numbers of tokens is padded with dummy tokens that self-attention masks out. Built on
torchvision's ViT blocks (``EncoderBlock``, ``MLPBlock``).
"""

import functools
import math

import torch
import torch.nn as nn
from torchvision.models.vision_transformer import EncoderBlock

from roar.errors import RoarError
from roar.models.registry import register_model


class MaskedEncoderBlock(EncoderBlock):
    """torchvision's pre-norm encoder block, with a key padding mask for the dummy tokens."""

    def forward(self, x, padding=None):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, key_padding_mask=padding, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    def __init__(  # noqa: PLR0913 (the network's hyperparameters, each a config key)
        self,
        num_classes,
        in_channels,
        image_size,
        patch_size,
        dim,
        depth,
        heads,
        mlp_ratio=4.0,
        dropout=0.0,
        norm_eps=1e-5,
    ):
        super().__init__()
        if image_size % patch_size:
            raise RoarError(
                f"ViT: image size {image_size} is not divisible by patch size {patch_size}. "
                f"Pick model.params.patch_size among the divisors of {image_size}, or resize the data "
                f"(data.image_size)."
            )
        self.patch_size = patch_size
        self.num_patches = (image_size // patch_size) ** 2
        self.conv_proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, self.num_patches + 1, dim).normal_(std=0.02))
        norm = functools.partial(nn.LayerNorm, eps=norm_eps)  # timm's and torchvision's ViTs: 1e-6
        self.blocks = nn.ModuleList(
            MaskedEncoderBlock(heads, dim, int(dim * mlp_ratio), dropout, dropout, norm) for _ in range(depth)
        )
        self.ln = norm(dim)
        self.head = nn.Linear(dim, num_classes)
        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def tokens(self, x):
        """Patch tokens with their positional embedding, (B, N, dim)."""
        return self.conv_proj(x).flatten(2).transpose(1, 2) + self.pos_embedding[:, 1:]

    def forward(self, x, keep=None):
        """Logits; ``keep`` (B, N) or (B, H/p, W/p) boolean, True for patches the model sees."""
        tokens = self.tokens(x)
        b, n, d = tokens.shape
        padding = None
        if keep is not None:
            keep = keep.reshape(b, -1).bool()
            if keep.shape[1] != n:
                raise RoarError(f"ViT: keep has {keep.shape[1]} entries per sample, the model has {n} patches.")
            # kept tokens first, in their original order; the rest of each row is padding
            order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, : int(keep.sum(1).max())]
            tokens = tokens.gather(1, order[..., None].expand(-1, -1, d))
            padding = ~keep.gather(1, order)
            padding = torch.cat([padding.new_zeros(b, 1), padding], dim=1) if padding.any() else None
        cls = (self.class_token + self.pos_embedding[:, :1]).expand(b, -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            h = block(h, padding)
        return self.head(self.ln(h[:, 0]))


_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}  # (dim, depth, heads), DeiT sizes


def _register_vit(name, dim, depth, heads):
    @register_model(name)
    def build(  # noqa: PLR0913 (the network's hyperparameters, each a config key)
        num_classes,
        in_channels,
        image_size,
        patch_size=4,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=4.0,
        dropout=0.0,
        norm_eps=1e-5,
    ):
        return ViT(num_classes, in_channels, image_size, patch_size, dim, depth, heads, mlp_ratio, dropout, norm_eps)

    return build


for _name, (_dim, _depth, _heads) in _SIZES.items():
    _register_vit(_name, _dim, _depth, _heads)
