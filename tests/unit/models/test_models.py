"""Every registered model runs at tiny size; the ViT drops tokens exactly as the missingness paper says."""

import math

import pytest
import torch

from roar.errors import RoarError
from roar.masking.patches import patch_keep
from roar.models import available, build_model

TINY = {"vit_tiny": {"dim": 32, "depth": 2, "heads": 2}, "vit_small": {"dim": 32, "depth": 2, "heads": 2}}


@pytest.mark.parametrize("name", [n for n in available() if n != "ensemble"])  # ensembles: tests/test_ensemble.py
@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_model_forward(name, in_channels):
    torch.manual_seed(0)
    if name == "torchvision" and in_channels != 3:  # torchvision's stems are 3-channel: refused, naming the way out
        with pytest.raises(RoarError, match="takes 3-channel images"):
            build_model(name, num_classes=7, in_channels=in_channels, image_size=16)
        return
    net = build_model(name, num_classes=7, in_channels=in_channels, image_size=16, **TINY.get(name, {}))
    out = net(torch.rand(2, in_channels, 16, 16))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_small_stem_keeps_resolution():
    net = build_model("resnet18", num_classes=10, small_stem=True)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    assert net.layer1(net.relu(net.bn1(net.conv1(torch.rand(1, 3, 32, 32))))).shape[-1] == 32


@pytest.fixture
def vit():
    torch.manual_seed(0)
    net = build_model("vit_tiny", num_classes=5, image_size=16, patch_size=4, dim=32, depth=2, heads=2)
    torch.nn.init.normal_(net.head.weight)  # the zero-initialised head would make every output equal
    return net.eval()


def test_vit_keep_all_true_equals_plain_forward(vit):
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(vit(x, keep=torch.ones(3, 16, dtype=torch.bool)), vit(x), atol=1e-6)


def test_vit_ignores_pixels_of_dropped_patches(vit):
    x = torch.rand(2, 3, 16, 16)
    keep = torch.ones(2, 4, 4, dtype=torch.bool)
    keep[0, 1, 2] = keep[1, 0, 0] = keep[1, 3, 3] = False
    changed = x.clone()
    changed[0, :, 4:8, 8:12] = torch.rand(3, 4, 4)
    changed[1, :, 0:4, 0:4] = 0
    changed[1, :, 12:16, 12:16] = 7.0
    assert torch.allclose(vit(x, keep=keep), vit(changed, keep=keep), atol=1e-6)
    assert not torch.allclose(vit(x), vit(changed), atol=1e-4)  # the plain forward does see them


def test_vit_ragged_keep_equals_one_sample_at_a_time(vit):
    """Different numbers of kept tokens in one batch (padding + attention mask) give each sample's
    own result, the same as dropping its tokens with nothing else in the batch."""
    torch.manual_seed(1)
    x = torch.rand(4, 3, 16, 16)
    keep = torch.rand(4, 16) < torch.tensor([[0.2], [0.5], [0.8], [1.0]])
    keep[:, 0] = True
    batched = vit(x, keep=keep)
    for i in range(4):
        tokens = vit.tokens(x[i : i + 1])[:, keep[i]]
        h = torch.cat([vit.class_token + vit.pos_embedding[:, :1], tokens], dim=1)
        for block in vit.blocks:
            h = block(h)
        assert torch.allclose(batched[i], vit.head(vit.ln(h[:, 0]))[0], atol=1e-5)


def test_vit_gradient_reaches_kept_pixels_only(vit):
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, 0, 0] = False
    vit(x, keep=keep)[0, 0].backward()
    assert x.grad[0, :, :4, :4].abs().sum() == 0 and x.grad[0, :, 4:, 4:].abs().sum() > 0


def test_patch_keep_drops_any_touched_patch():
    removed = torch.zeros(1, 8, 8, dtype=torch.bool)
    removed[0, 0, 5] = True  # one pixel of patch (0, 1)
    keep = patch_keep(removed, 4)
    assert keep.tolist() == [[[True, False], [True, True]]]


def test_vit_patch_size_must_divide_image():
    with pytest.raises(RoarError, match="image size 30 is not divisible by patch size 4"):
        build_model("vit_tiny", image_size=30, patch_size=4)


def test_unknown_model_lists_valid_names():
    with pytest.raises(
        RoarError,
        match="Valid model names: ensemble, fastnet, preact_resnet164, preact_resnet18, resnet18, resnet20, resnet50, "
        "resnet8, torchvision, vgg16, vit_small, vit_tiny, wide_resnet",
    ):
        build_model("vgg19")


@pytest.mark.parametrize(
    ("name", "params", "count"),
    [
        ("vgg16", {}, 14_728_266),  # overinterpretation S1: 14.7M
        ("preact_resnet18", {}, 11_172_170),  # overinterpretation S1: 11.2M
        ("resnet20", {}, 272_474),  # overinterpretation S1: 0.27M
        ("preact_resnet164", {}, 1_703_258),  # bearpaw's preresnet-164 (masking paper D.1): 1.70M
        ("wide_resnet", {}, 46_160_474),  # WRN-34-10, Madry et al.'s layout: 46.2M
        ("wide_resnet", {"depth": 28}, 36_479_194),  # WRN-28-10 (Zagoruyko & Komodakis, Table 1): 36.5M
    ],
)
def test_the_papers_cifar_networks_have_their_published_sizes_and_train(name, params, count):
    """Parameter counts for CIFAR-10 (10 classes, 3 channels) as the papers state them; a forward and backward
    pass at 32x32 reaches every parameter."""
    torch.manual_seed(0)
    net = build_model(name, num_classes=10, in_channels=3, image_size=32, **params)
    assert sum(p.numel() for p in net.parameters()) == count
    if count < 20_000_000:  # the wide ones: counted only (a backward pass of 46M parameters costs seconds here)
        net(torch.rand(2, 3, 32, 32)).logsumexp(1).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_the_vit_recipe_trains_with_adamw_warmup_and_timm_s_decay_groups():
    """recipe=vit_adamw (timm's DeiT defaults): AdamW without decay on 1-D parameters, the class token and the
    position embedding; the lr warms up linearly for 5 epochs, then follows a half cosine to 0."""
    from roar.classifier.module import Classifier, warmup_cosine
    from roar.config import compose_config
    from roar.utils.plain import to_plain

    optim = to_plain(compose_config("train", ["recipe=vit_adamw"]).optim)
    module = Classifier(
        model={"name": "vit_tiny", "params": {"patch_size": 4}},
        optim=optim,
        augment={"name": "none"},
        num_classes=10,
        image_shape=[3, 32, 32],
        mean=[0.5] * 3,
        std=[0.25] * 3,
        max_epochs=300,
    )
    opt = module.optimizer(optim)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 5e-4
    plain, decayed = opt.param_groups
    names = {id(p): n for n, p in module.named_parameters()}
    assert plain["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.05
    assert {"net.class_token", "net.pos_embedding"} <= {names[id(p)] for p in plain["params"]}
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(
        p.ndim <= 1 for p in plain["params"] if names[id(p)] not in ("net.class_token", "net.pos_embedding")
    )
    assert len(plain["params"]) + len(decayed["params"]) == sum(1 for _ in module.parameters())
    assert [round(warmup_cosine(e, 5, 300), 4) for e in (0, 4, 5, 300)] == [0.2, 1.0, 1.0, 0.0]
    assert warmup_cosine(152, 5, 300) == pytest.approx(0.5 * (1 + math.cos(math.pi * 147 / 295)))
    with pytest.raises(RoarError, match="optim.optimizer='adam'; valid: sgd, adamw"):
        Classifier(**{**module.hparams, "optim": {**optim, "optimizer": "adam"}})


def test_inception_v3_trains_without_its_auxiliary_head_and_loads_torchvision_weights(tmp_path):
    """The overinterpretation paper's ImageNet model (S1: "aux_logits=False"): one output in training mode too;
    torchvision's weights, auxiliary head included, load (the head left out) and give torchvision's logits."""
    from torchvision.models import inception_v3

    from roar.models.pretrained import load_pretrained

    net = build_model("torchvision", num_classes=1000, in_channels=3, image_size=299, arch="inception_v3")
    theirs = inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    aux = sum(p.numel() for n, p in theirs.named_parameters() if n.startswith("AuxLogits."))
    assert sum(p.numel() for p in theirs.parameters()) == 27_161_264  # torchvision's published count
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - aux == 23_834_568
    torch.save(theirs.state_dict(), tmp_path / "inception.pth")
    mine = build_model(
        "torchvision", num_classes=1000, in_channels=3, image_size=299, arch="inception_v3", transform_input=True
    )
    load_pretrained(mine, tmp_path / "inception.pth", "torchvision")
    x = torch.rand(1, 3, 299, 299)
    mine.eval(), theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x))
    net.train()
    out = net(torch.rand(2, 3, 299, 299))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)  # not InceptionOutputs
    out.sum().backward()
