"""Sources the way users have them: factory arguments, no downloads, TorchScript, torch.export, pickles."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.cli.main import main
from edgekit.convert.offline import download_arguments
from edgekit.convert.pipeline import BuildConfig, build
from edgekit.convert.source import parse_factory_args, resolve_source
from edgekit.errors import ConfigError, SourceError
from edgekit.runtime.open import open_runner
from tests.convert.factories import downloading, tiny

FAST = dict(input_size=(32, 32), latency_runs=0, task="segmentation")


def test_factory_args_are_python_literals():
    assert parse_factory_args(["weights=None", "num_classes=4", "name=abc", "sizes=[1, 2]", "ok=True"]) == (
        ("weights", None), ("num_classes", 4), ("name", "abc"), ("sizes", [1, 2]), ("ok", True))
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_factory_args(["weights"])


def test_factory_args_reach_the_factory():
    src = resolve_source("tests.convert.factories:tiny", (32, 32), factory_args=["classes=5", "aux=False"])
    model = src.load_model()
    assert model(torch.zeros(1, 3, 32, 32))["out"].shape == (1, 5, 32, 32)
    assert model.aux is None


def test_a_download_attempt_is_stopped_and_names_the_argument_that_avoids_it(tmp_path, capsys):
    assert download_arguments(downloading)[0] == "weights_backbone=None"
    src = resolve_source("tests.convert.factories:downloading", (32, 32))
    with pytest.raises(SourceError, match=r"--factory-arg weights_backbone=None"):
        src.load_model()
    code = main(["build", "tests.convert.factories:downloading", "--input-size", "32", "--task", "segmentation",
                 "-o", str(tmp_path / "out"), "--latency-runs", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "weights_backbone=None" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_torchvision_factory_builds_offline_with_its_argument(tmp_path):
    tv = pytest.importorskip("torchvision")
    with pytest.raises(SourceError, match="weights_backbone=None"):
        resolve_source("torchvision.models.segmentation:lraspp_mobilenet_v3_large", (64, 64)).load_model()
    result = build("torchvision.models.segmentation:lraspp_mobilenet_v3_large", tmp_path / "lraspp",
                   BuildConfig(input_size=(64, 64), latency_runs=0, task="segmentation",
                               factory_args=("weights_backbone=None", "num_classes=3")))
    assert result.manifest.outputs[0].shape[1:] == (3, 64, 64)
    assert result.manifest.source["factory_args"] == {"weights_backbone": "None", "num_classes": "3"}
    from edgekit.artifact.folder import load_artifact

    torch.manual_seed(0)  # the seed a factory source is built under: the same random weights
    model = tv.models.segmentation.lraspp_mobilenet_v3_large(weights_backbone=None, num_classes=3).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x))["out"].numpy()
    with open_runner(load_artifact(tmp_path / "lraspp")) as runner:
        got = next(iter(runner.infer({runner.input_specs()[0].name: x}).values()))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)  # the artifact is the factory's model


def test_dict_outputs_deploy_the_spatial_one_and_report_the_rest(tmp_path):
    result = build("tests.convert.factories:tiny", tmp_path / "a", BuildConfig(**FAST))
    assert tuple(result.manifest.outputs[0].shape) == (1, 3, 32, 32)
    source = next(s for s in json.loads((tmp_path / "a" / "report.json").read_text())["stages"] if s["stage"] == "source")
    assert "'out'" in source["facts"]["output"] and "left out: aux" in source["facts"]["output"]
    picked = build("tests.convert.factories:tiny", tmp_path / "b", BuildConfig(**FAST, output="aux"))
    assert tuple(picked.manifest.outputs[0].shape) == (1, 2, 32, 32)
    with pytest.raises(ConfigError, match="outputs: out, aux"):
        build("tests.convert.factories:tiny", tmp_path / "c", BuildConfig(**FAST, output="logits"))
    assert not (tmp_path / "c").exists()


class _OnlyOut(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def test_a_torchscript_program_with_several_outputs_is_one_line(tmp_path):
    model = tiny().eval()
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, 32, 32), strict=False), tmp_path / "two.pt")
    with pytest.raises(ConfigError, match="returns 2 outputs .out, aux."):
        build(str(tmp_path / "two.pt"), tmp_path / "out", BuildConfig(**FAST))
    assert not (tmp_path / "out").exists()


def _saved(tmp_path: Path, kind: str) -> Path:
    torch.manual_seed(2)
    model = tiny(aux=False).eval()
    x = torch.zeros(1, 3, 32, 32)
    if kind == "torchscript":
        torch.jit.save(torch.jit.trace(_OnlyOut(model), x), tmp_path / "model.pt")
        return tmp_path / "model.pt"
    if kind == "exported":
        torch.export.save(torch.export.export(model, (x,)), tmp_path / "model.pt2")
        return tmp_path / "model.pt2"
    torch.save(model, tmp_path / "whole.pth")
    return tmp_path / "whole.pth"


@pytest.mark.parametrize("kind", ["torchscript", "exported", "pickled"])
def test_saved_programs_build_without_reparam_and_match_the_module(tmp_path, kind):
    path = _saved(tmp_path, kind)
    trust = kind == "pickled"
    src = resolve_source(str(path), (32, 32), task="segmentation", trust_checkpoint=trust)
    assert src.kind == kind and not src.transformable
    result = build(str(path), tmp_path / "out", BuildConfig(**FAST, trust_checkpoint=trust))
    stages = {s["stage"]: s for s in json.loads((tmp_path / "out" / "report.json").read_text())["stages"]}
    assert "skipped" in stages["reparam"]["facts"]
    from edgekit.artifact.folder import load_artifact

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with open_runner(load_artifact(result.folder)) as runner:
        got = next(iter(runner.infer({runner.input_specs()[0].name: x}).values()))
    torch.manual_seed(2)
    want = tiny(aux=False).eval()(torch.from_numpy(x))["out"].detach().numpy()
    assert np.abs(got - want).max() < 1e-4


def test_a_pickled_program_needs_trust(tmp_path):
    path = _saved(tmp_path, "pickled")
    with pytest.raises(SourceError, match="--trust-checkpoint"):
        resolve_source(str(path), (32, 32))


def test_manifest_records_a_lower_resolution_output(tmp_path):
    """The build measures the output's stride and whether it holds probabilities; infer reads both."""
    from edgekit.artifact.manifest import read_manifest

    result = build("tests.convert.factories:tiny", tmp_path / "a", BuildConfig(**FAST, factory_args=("stride=4",)))
    assert tuple(result.manifest.outputs[0].shape) == (1, 3, 8, 8)
    assert read_manifest(tmp_path / "a").output == {"stride": 4.0, "probabilities": False}
