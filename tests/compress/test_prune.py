"""Structured pruning: shapes kept, exportable, the redundant channel is the one cut, adapters per family."""
import pytest
import torch

pytest.importorskip("torch_pruning")

from edgekit.compress.prune import PruneSettings, family_of, prune  # noqa: E402
from edgekit.convert.export import ExportSpec, export_onnx  # noqa: E402
from edgekit.errors import ConfigError  # noqa: E402
from tests.compress.compress_fixtures import TinyCnn, tiny_segmenter, tiny_vit  # noqa: E402


def test_the_zeroed_channel_is_the_one_pruned():
    model = TinyCnn()
    with torch.no_grad():
        model.conv1.weight[5].zero_()  # channel 5 is computed from nothing and read by nobody
        model.conv1.bias[5] = 0.0
        model.conv2.weight[:, 5].zero_()
    original = model.conv1.weight.detach().clone()
    x = torch.randn(1, 3, 16, 16)
    pruned = prune(model, x, PruneSettings(ratio=1 / 16, round_to=None, scope="stage")).model
    kept = [i for i in range(16) if i != 5]
    assert pruned.conv1.out_channels == 15
    assert torch.equal(pruned.conv1.weight, original[kept])
    assert model.conv1.out_channels == 16  # the original is untouched


def test_duplicated_channel_pair_loses_one_under_global_magnitude():
    model = TinyCnn()
    with torch.no_grad():
        model.conv2.weight.mul_(10)  # every conv2 channel outweighs conv1's
        model.conv1.weight[3].mul_(1e-3)
        model.conv2.weight[:, 3].mul_(1e-3)
    x = torch.randn(1, 3, 16, 16)
    pruned = prune(model, x, PruneSettings(ratio=1 / 32, round_to=None, scope="global")).model
    assert pruned.conv2.out_channels == 16 and pruned.conv1.out_channels == 15
    assert not torch.allclose(pruned.conv1.weight[3], model.conv1.weight[3])


@pytest.mark.parametrize("importance", ["magnitude", "taylor"])
def test_convnext_segmenter_keeps_shape_and_exports(importance, tmp_path):
    model = tiny_segmenter()
    x = torch.randn(1, 3, 64, 64)
    result = prune(model, x, PruneSettings(ratio=0.5, importance=importance))
    r = result.report
    assert r.family == "convnext" and r.params_after < r.params_before and r.macs_after < r.macs_before
    assert any(name.endswith("mlp.fc1") for name in r.layers)
    assert result.model(x).shape == model(x).shape
    exported = export_onnx(result.model, tmp_path / "m.onnx", ExportSpec((64, 64)))
    assert exported.error.max_rel < 1e-3


def test_vit_loses_whole_heads_and_attributes_follow(tmp_path):
    model = tiny_vit()
    x = torch.randn(1, 3, 160, 160)
    result = prune(model, x, PruneSettings(ratio=0.5))
    attn = result.model.blocks[0].attn
    assert result.report.family == "vit"
    assert result.report.heads["blocks.0.attn"] == [2, 1]
    assert attn.num_heads == 1 and attn.attn_dim == attn.head_dim and attn.qkv.out_features == 3 * attn.head_dim
    assert result.model(x).shape == model(x).shape
    assert result.model.embed_dim == model.embed_dim  # the embedding width is left, and said so
    assert any("embedding width" in s for s in result.report.left)
    export_onnx(result.model, tmp_path / "vit.onnx", ExportSpec((160, 160)))


def test_fastvit_prunes_only_mlp_hidden_width():
    from edgekit.convert.reparam import reparameterize

    model = tiny_segmenter("fastvit_t8", channels=16)
    x = torch.randn(1, 3, 64, 64)
    deployed = reparameterize(model, x).model
    result = prune(deployed, x, PruneSettings(ratio=0.5))
    assert result.report.family == "fastvit"
    backbone = [n for n in result.report.layers if n.startswith("backbone.")]
    assert backbone and all(n.endswith("mlp.fc1") for n in backbone)
    assert result.model(x).shape == model(x).shape


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="magnitude, taylor"):
        PruneSettings(importance="random")
    with pytest.raises(ConfigError):
        PruneSettings(ratio=1.0)
    assert family_of(TinyCnn()) == "cnn"


def test_dinov3_eva_prunes_only_mlp_widths_and_exports(tmp_path):
    """DINOv3 in timm is an Eva with RoPE: its MLP hidden widths go, heads and embedding stay (said so)."""
    import timm

    model = timm.create_model("vit_small_patch16_dinov3", pretrained=False, img_size=64, embed_dim=64, depth=2,
                              num_heads=2, num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    result = prune(model, x, PruneSettings(ratio=0.5))
    assert result.report.family == "eva"
    assert result.report.layers and all(".mlp." in n for n in result.report.layers)
    assert not result.report.heads and result.model.embed_dim == model.embed_dim
    assert any("RoPE" in s for s in result.report.left) and any("embedding width" in s for s in result.report.left)
    assert result.report.params_after < result.report.params_before
    assert result.model(x).shape == model(x).shape
    export_onnx(result.model, tmp_path / "eva.onnx", ExportSpec((64, 64)))


def test_vit_embedding_width_is_pruned_with_its_tokens_and_norms(tmp_path):
    model = tiny_vit()
    x = torch.randn(1, 3, 160, 160)
    result = prune(model, x, PruneSettings(ratio=0.0, embed=0.5))
    pruned, width = result.model, model.embed_dim // 2
    assert pruned.embed_dim == width and pruned.patch_embed.proj.out_channels == width
    assert pruned.cls_token.shape[-1] == width and pruned.pos_embed.shape[-1] == width
    block = pruned.blocks[0]
    assert block.attn.qkv.in_features == width and block.attn.proj.out_features == width
    assert block.mlp.fc1.in_features == width and block.mlp.fc2.out_features == width
    assert block.norm1.normalized_shape == (width,) and pruned.norm.normalized_shape == (width,)
    assert block.attn.num_heads == model.blocks[0].attn.num_heads  # heads untouched by the embedding cut
    assert not any("embedding width" in s for s in result.report.left)
    assert result.report.params_after < result.report.params_before
    assert pruned(x).shape == model(x).shape
    export_onnx(pruned, tmp_path / "narrow.onnx", ExportSpec((160, 160)))


def test_embedding_cut_on_a_family_that_cannot_is_said():
    model = tiny_segmenter("test_convnext", channels=16)
    x = torch.randn(1, 3, 64, 64)
    result = prune(model, x, PruneSettings(ratio=0.25, embed=0.5))
    assert any("embedding width kept: the convnext adapter" in s for s in result.report.left)


def _kill_stream_channels(model, killed):
    """Zero every weight of the given stream channels of each FastViT-T8 stage (deploy form), on both
    sides: their producers, mixers, MLP, layer scale, and what reads them (fc1, the next stage's
    grouped downsampling kernel, the FPN lateral). Removing them then changes nothing."""
    backbone, head = model.backbone, model.head
    with torch.no_grad():
        for s, chans in enumerate(killed):
            stage = getattr(backbone, f"stages_{s}")
            producer = backbone.stem_2.reparam_conv if s == 0 else stage.downsample.proj[-1].reparam_conv
            outs = [producer] + [c for b in stage.blocks for c in (b.token_mixer.reparam_conv, b.mlp.conv.conv, b.mlp.fc2)]
            for conv in outs:
                conv.weight[chans] = 0
                if conv.bias is not None:
                    conv.bias[chans] = 0
            for b in stage.blocks:
                if isinstance(b.mlp.conv.bn, torch.nn.BatchNorm2d):  # folded into the conv where edgekit could
                    b.mlp.conv.bn.weight[chans] = 0
                    b.mlp.conv.bn.bias[chans] = 0
                b.layer_scale.gamma[chans] = 0
                b.mlp.fc1.weight[:, chans] = 0
            head.lateral[s].weight[:, chans] = 0
            if s + 1 < len(killed):
                down = getattr(backbone, f"stages_{s + 1}").downsample.proj[0].reparam_conv
                per = down.out_channels // down.groups
                rows = [c * per + j for c in chans for j in range(per)]
                down.weight[rows] = 0
                down.bias[rows] = 0


def test_fastvit_stream_cut_removes_the_dead_channels_exactly(tmp_path):
    """The stream of every RepMixer stage loses a quarter: the zeroed channels, and the output is unchanged."""
    from edgekit.convert.reparam import reparameterize

    x = torch.randn(1, 3, 64, 64)
    model = reparameterize(tiny_segmenter("fastvit_t8", channels=16), x).model
    widths = [getattr(model.backbone, f"stages_{s}").blocks[0].mlp.fc2.out_channels for s in range(4)]
    gen = torch.Generator().manual_seed(0)
    killed = [sorted(torch.randperm(w, generator=gen)[: w // 4].tolist()) for w in widths]
    _kill_stream_channels(model, killed)
    result = prune(model, x, PruneSettings(ratio=0.0, embed=0.25, round_to=None))
    pruned = result.model.backbone
    for s, (w, chans) in enumerate(zip(widths, killed)):
        stage = getattr(pruned, f"stages_{s}")
        kept = [c for c in range(w) if c not in chans]
        assert stage.blocks[0].mlp.fc2.out_channels == len(kept) == w - w // 4
        gamma = getattr(model.backbone, f"stages_{s}").blocks[0].layer_scale.gamma
        assert torch.equal(stage.blocks[0].layer_scale.gamma, gamma[kept])
    assert pruned.stages_1.downsample.proj[0].reparam_conv.groups == widths[0] - widths[0] // 4
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), model(x), rtol=1e-4, atol=1e-4)
    assert result.report.params_after < result.report.params_before
    export_onnx(result.model, tmp_path / "narrow.onnx", ExportSpec((64, 64)))


def test_fastvit_attention_stage_keeps_its_stream(tmp_path):
    from edgekit.convert.reparam import reparameterize

    x = torch.randn(1, 3, 64, 64)
    model = reparameterize(tiny_segmenter("fastvit_sa12", channels=16), x).model
    result = prune(model, x, PruneSettings(ratio=0.5, embed=0.5))
    before, after = model.backbone, result.model.backbone
    assert after.stages_2.blocks[0].mlp.fc2.out_channels == before.stages_2.blocks[0].mlp.fc2.out_channels // 2
    assert after.stages_3.blocks[0].mlp.fc2.out_channels == before.stages_3.blocks[0].mlp.fc2.out_channels
    assert after.stages_3.downsample.proj[-1].reparam_conv.out_channels == before.stages_3.downsample.proj[-1].reparam_conv.out_channels
    assert any("attention stages' stream kept" in s for s in result.report.left)
    assert result.model(x).shape == model(x).shape
    export_onnx(result.model, tmp_path / "sa12.onnx", ExportSpec((64, 64)))
