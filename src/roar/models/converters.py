"""Other libraries' Vision Transformer weights in roar's ViT layout (roar.models.vit), so a pretrained ViT-S/16 or
DeiT-S from a local file is roar's base model (``base_checkpoint=``; missingness paper, section 3 and appendix A).

Two layouts are recognized by their keys and renamed tensor for tensor; nothing is re-fit:

- timm's ``VisionTransformer`` (``vit_small_patch16_224``, ``deit_small_patch16_224``): ``cls_token``, ``pos_embed``,
  ``patch_embed.proj``, ``blocks.<i>.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``norm``, ``head``. timm packs
  q, k and v in one ``qkv`` linear in that order, as ``nn.MultiheadAttention``'s ``in_proj`` does.
- torchvision's ``VisionTransformer`` (``vit_b_16`` ...): ``class_token``, ``conv_proj``, ``encoder.pos_embedding``,
  ``encoder.layers.encoder_layer_<i>.*`` (the blocks roar's are built from), ``encoder.ln``, ``heads.head``.

Both use LayerNorm eps 1e-6 where roar's ViT defaults to PyTorch's 1e-5: set ``model.params.norm_eps: 1.0e-6`` to
reproduce their logits (the missingness experiments on ImageNet do). A distilled DeiT (``dist_token``), LayerScale
(``ls1``), register tokens or a pooled head (``fc_norm``) are refused by name: roar's ViT has none of them.
"""

import re

import torch

from roar.errors import RoarError

UNSUPPORTED = ("dist_token", "reg_token", ".ls1.", ".ls2.", "fc_norm.weight", "head_dist.")
TIMM = [
    (r"^cls_token$", "class_token"),
    (r"^pos_embed$", "pos_embedding"),
    (r"^patch_embed\.proj\.", "conv_proj."),
    (r"^blocks\.(\d+)\.norm1\.", r"blocks.\1.ln_1."),
    (r"^blocks\.(\d+)\.attn\.qkv\.weight$", r"blocks.\1.self_attention.in_proj_weight"),
    (r"^blocks\.(\d+)\.attn\.qkv\.bias$", r"blocks.\1.self_attention.in_proj_bias"),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"blocks.\1.self_attention.out_proj."),
    (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.ln_2."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"blocks.\1.mlp.0."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"blocks.\1.mlp.3."),
    (r"^norm\.", "ln."),
    (r"^head\.", "head."),
]
TORCHVISION = [
    (r"^class_token$", "class_token"),
    (r"^conv_proj\.", "conv_proj."),
    (r"^encoder\.pos_embedding$", "pos_embedding"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"blocks.\1."),
    (r"^encoder\.ln\.", "ln."),
    (r"^heads\.head\.", "head."),
]


def layout(weights: dict) -> str | None:
    """``timm`` or ``torchvision`` when ``weights`` are that library's ViT, else None (roar's own, or no ViT)."""
    if "blocks.0.attn.qkv.weight" in weights and "pos_embed" in weights:
        return "timm"
    if "encoder.pos_embedding" in weights and "encoder.layers.encoder_layer_0.ln_1.weight" in weights:
        return "torchvision"
    return None


def to_roar_vit(weights: dict, path) -> dict:
    """``weights`` renamed into roar's ViT layout when they are timm's or torchvision's; otherwise as they are."""
    found = layout(weights)
    if found is None:
        return weights
    refused = sorted({u.strip(".") for u in UNSUPPORTED for k in weights if u in k})
    if refused:
        raise RoarError(
            f"base_checkpoint={path} is a {found} ViT with {', '.join(refused)}, which roar's ViT does not have "
            f"(a distilled DeiT, LayerScale, register tokens or a pooled head). Use a plain ViT or DeiT checkpoint."
        )
    rules = TIMM if found == "timm" else TORCHVISION
    out = {}
    for key, tensor in weights.items():
        for pattern, target in rules:
            if re.match(pattern, key):
                out[re.sub(pattern, target, key)] = tensor
                break
        else:
            out[key] = tensor  # left as it is: load_pretrained names it as unexpected
    return {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in out.items()}
