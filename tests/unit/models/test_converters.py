"""A ViT trained by timm or torchvision is roar's base model with the same logits (roar.models.converters): the
weights are renamed into roar's layout and loaded by ``base_checkpoint=`` (roar.models.pretrained)."""

import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

from roar.errors import RoarError
from roar.models.pretrained import load_pretrained
from roar.models.registry import build_model

SMALL = {"image_size": 32, "patch_size": 8, "dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0}


def randomized(net):
    """Every parameter drawn at random (zero-initialized heads and tokens would hide a wrong mapping)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return net.eval()


def roar_vit(path):
    net = build_model("vit_tiny", num_classes=6, in_channels=3, **SMALL, norm_eps=1e-6).eval()
    load_pretrained(net, path, "vit_tiny")
    return net


def test_torchvisions_vit_gives_the_same_logits_in_roars_layout(tmp_path):
    layers = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}
    theirs = randomized(VisionTransformer(image_size=32, patch_size=8, num_classes=6, **layers))
    torch.save(theirs.state_dict(), tmp_path / "tv.pt")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(roar_vit(tmp_path / "tv.pt")(x), theirs(x), atol=1e-5)


def test_timms_vit_gives_the_same_logits_in_roars_layout_and_its_vit_small_has_the_papers_size(tmp_path):
    """timm's own VisionTransformer (the missingness paper's ViT-S, Wightman 2019), not a re-implementation of it."""
    from timm.models import vision_transformer

    theirs = randomized(
        vision_transformer.VisionTransformer(
            img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=6
        )
    )
    torch.save(theirs.state_dict(), tmp_path / "timm.pt")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(roar_vit(tmp_path / "timm.pt")(x), theirs(x), atol=1e-5)
    vit_s = vision_transformer.VisionTransformer(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6)
    mine = build_model("vit_small", num_classes=1000, in_channels=3, image_size=224, patch_size=16)
    count = sum(p.numel() for p in mine.parameters())
    assert count == sum(p.numel() for p in vit_s.parameters()) == 22_050_664  # ViT-S: 22 M (paper, Table 1)
    with_distillation = {**theirs.state_dict(), "dist_token": torch.zeros(1, 1, 32)}
    torch.save(with_distillation, tmp_path / "deit_distilled.pt")
    with pytest.raises(RoarError, match="dist_token"):
        roar_vit(tmp_path / "deit_distilled.pt")
