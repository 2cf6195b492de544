"""Targets and recipes as package data, plus the user's search path (--targets-dir / --recipes-dir,
EDGEKIT_PATH), and the one-line error of a recipe whose weights are missing."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgekit import datapath
from edgekit.cli.main import main
from edgekit.errors import ConfigError, SourceError
from edgekit.recipes import list_recipes, load_recipe
from edgekit.targets import list_targets, load_target

PACKAGE_DATA = Path(datapath.__file__).parent / "data"


def _target(folder: Path, name: str, summary: str = "ours") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "kind": "cpu", "backend": "onnxruntime", "summary": summary}))
    return path


def _recipe(folder: Path, name: str, checkpoint: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "task": "segmentation", "model": {"backbone": "test_convnext", "head": "fpn", "channels": 16},
            "input": {"size": [64, 64], "stride": 32}, "classes": ["a", "b"]}
    if checkpoint:
        data["checkpoint"] = checkpoint
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def no_user_path(monkeypatch):
    monkeypatch.delenv(datapath.ENV, raising=False)


def test_the_package_ships_targets_recipes_and_the_demo_weights():
    cpu = load_target("cpu")
    assert cpu.origin == "package" and cpu.path.parent == PACKAGE_DATA / "targets"
    demo = load_recipe("fastvit_sa12_fpn")
    assert demo.origin == "package" and demo.has_weights
    assert demo.checkpoint == PACKAGE_DATA / "models" / "weights" / "fastvit_sa12_fpn_bluemarble.safetensors"
    assert {t.origin for t in list_targets()} == {"package"} and len(list_recipes()) >= 5


def test_edgekit_path_adds_and_overrides_profiles(tmp_path, monkeypatch):
    team = tmp_path / "team"
    _target(team / "targets", "edge-box")
    _target(team / "targets", "cpu", summary="our cpu")
    monkeypatch.setenv(datapath.ENV, f"{tmp_path / 'absent'}:{team}")
    assert load_target("edge-box").origin == "EDGEKIT_PATH"
    assert load_target("cpu").summary == "our cpu"  # the user's folder comes before the package's
    listed = {t.name: t.origin for t in list_targets()}
    assert listed["edge-box"] == listed["cpu"] == "EDGEKIT_PATH" and listed["jetson-orin-nx"] == "package"


def test_targets_dir_comes_first(tmp_path, monkeypatch):
    team = tmp_path / "team"
    _target(team / "targets", "edge-box", summary="from the path")
    mine = _target(tmp_path / "mine", "edge-box", summary="from the option").parent
    monkeypatch.setenv(datapath.ENV, str(team))
    assert load_target("edge-box", mine).summary == "from the option"
    assert load_target("edge-box").summary == "from the path"
    with pytest.raises(ConfigError, match="--targets-dir .* is not a folder"):
        load_target("cpu", tmp_path / "nope")


def test_unknown_names_say_where_they_looked(tmp_path):
    with pytest.raises(ConfigError, match=r"choose one of: .*cpu.*looked in .*\(--targets-dir\).*\(package\)"):
        load_target("edge-box", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown recipe .*known: .*fastvit_sa12_fpn.*--recipes-dir"):
        load_recipe("resnet_unknown", tmp_path)


def test_catalog_commands_list_user_entries_and_where_they_come_from(tmp_path, capsys):
    mine = _target(tmp_path / "mine", "edge-box").parent
    assert main(["targets", "--targets-dir", str(mine)]) == 0
    out = capsys.readouterr().out
    assert "edge-box" in out and "--targets-dir" in out and "jetson-orin-nx" in out and "package" in out
    recipes = _recipe(tmp_path / "recipes", "tiny_team").parent
    assert main(["models", "--recipes-dir", str(recipes)]) == 0
    out = capsys.readouterr().out
    assert "tiny_team" in out and "--recipes-dir" in out and "fastvit_sa12_fpn" in out


def test_weights_are_found_beside_the_recipe_or_on_the_search_path(tmp_path, monkeypatch):
    recipes = _recipe(tmp_path / "recipes", "team_fpn", checkpoint="weights/team_fpn.safetensors").parent
    team = tmp_path / "team"
    (team / "models" / "weights").mkdir(parents=True)
    (team / "models" / "weights" / "team_fpn.safetensors").write_bytes(b"weights")
    monkeypatch.setenv(datapath.ENV, str(team))
    recipe = load_recipe("team_fpn", recipes)
    assert recipe.has_weights and recipe.checkpoint == (team / "models" / "weights" / "team_fpn.safetensors").resolve()


def test_a_missing_weight_file_is_one_line_naming_where_it_looked(tmp_path, capsys):
    from edgekit.convert.source import resolve_source

    recipes = _recipe(tmp_path / "recipes", "team_fpn", checkpoint="weights/team_fpn.safetensors").parent
    with pytest.raises(SourceError, match=r"team_fpn.safetensors, not found in .*recipes/weights.*--checkpoint"):
        resolve_source("team_fpn", recipes_dir=recipes)
    assert main(["build", "team_fpn", "--recipes-dir", str(recipes), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(recipes / "weights") in err
    assert not (tmp_path / "out").exists()
