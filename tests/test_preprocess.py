"""Preprocess: each value with where it came from, written to and read from the manifest."""
from __future__ import annotations

import pytest

from edgekit.errors import ConfigError
from edgekit.preprocess import InputOptions, Preprocess


def test_origins_round_trip_through_the_manifest_dict_and_mark_assumptions():
    pre = Preprocess(mean=(0.0,) * 3, std=(1.0,) * 3).declared("assumed: no normalisation", mean=(0.0,) * 3,
                                                             std=(1.0,) * 3).declared("{option}", scale=4095)
    data = pre.to_dict()
    assert data["assumed"] is True and data["source"] == {"mean": "assumed: no normalisation",
                                                          "std": "assumed: no normalisation", "scale": "--scale"}
    back = Preprocess.from_dict(data)
    assert back == pre and back.origin == pre.origin and back.scale == 4095
    assert not Preprocess().declared("--mean", mean=(0.5, 0.5, 0.5)).assumed


def test_a_recipe_section_records_only_the_fields_it_declares():
    pre = Preprocess.from_dict({"size": [64, 64], "mean": [0.5, 0.5, 0.5], "channel_order": "bgr"}, origin="recipe r")
    assert pre.source_of("mean") == "recipe r" and pre.source_of("std") is None and pre.channel_order == "BGR"
    assert "source" not in Preprocess.from_dict({"mean": [0.5] * 3, "std": [1] * 3}).to_dict()  # old manifests as they were


@pytest.mark.parametrize("kwargs, match", [
    ({"mean": (0.5,) * 4, "std": (1.0,) * 3}, "has 4 values and std"),
    ({"mean": (0.5,) * 4, "std": (1.0,) * 4, "channel_order": "BGR"}, "BGR reverses 3 colour channels"),
    ({"channel_order": "GRB"}, "not one of RGB, BGR"),
])
def test_inconsistent_declarations_are_one_line_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Preprocess(**kwargs)


def test_model_channel_check_names_the_source_and_the_options():
    pre = Preprocess().declared("--mean", mean=(0.1, 0.2, 0.3, 0.4), std=(1, 1, 1, 1))
    pre.check_channels(4, "m.onnx")
    with pytest.raises(ConfigError, match=r"mean 0.1,0.2,0.3,0.4 \(--mean\) gives 4 channels but m.onnx takes 3"):
        pre.check_channels(3, "m.onnx")


def test_input_options_name_their_command_line_options():
    options = InputOptions(mean=(0.5,), channel_order="BGR")
    assert options.given() == {"mean": (0.5,), "channel_order": "BGR"}
    assert [InputOptions.option(k) for k in options.given()] == ["--mean", "--channel-order"]


def test_uint8_files_on_a_scale_1_artifact_say_how_raw_pixels_are_declared(tmp_path):
    """ddddocr's detector takes raw 0..255 pixels: `--scale 1` declares floats in 0..1 and refuses
    uint8 files; the message had an empty slot ('for  or float files') and no way forward."""
    import numpy as np

    from edgekit.errors import InputError
    from edgekit.images.pixels import PixelMap
    from edgekit.images.readers import open_image

    np.save(tmp_path / "page.npy", np.zeros((8, 8, 3), np.uint8))
    with open_image(tmp_path / "page.npy") as source, pytest.raises(InputError) as info:
        PixelMap.for_source(source, Preprocess(scale=1.0), (8, 8))
    message = str(info.value)
    assert "for  or" not in message and "declares scale 1 (it fits float files only)" in message
    assert "--scale 255 --mean 0,0,0 --std 0.00392157,0.00392157,0.00392157" in message


def test_std_help_says_how_raw_pixels_are_declared():
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    text = " ".join(CliRunner().invoke(cli, ["build", "--help"], terminal_width=200).output.split())
    assert "a model taking raw 0..255 RGB: --scale 255 --mean 0,0,0 --std 0.00392157" in text
