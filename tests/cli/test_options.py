"""One option grammar on every command: -o/--out for what it writes, --batch for the images per
inference call, -q/--quiet and -v/--verbose; the former names still parse, hidden, with a warning."""
from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

from edgekit.cli.main import COMMANDS, cli, main
from edgekit.cli.options import RenamedOptionWarning


def _command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli, info_name="edgekit"), name)


def _visible(command: click.Command) -> dict[str, click.Parameter]:
    """Every option string --help shows, with its parameter."""
    return {o: p for p in command.params if isinstance(p, click.Option) and not p.hidden
            for o in (*p.opts, *p.secondary_opts)}


def _parse(args: list[str]) -> click.Context:
    root = click.Context(cli, info_name="edgekit")
    return _command(args[0]).make_context(args[0], list(args[1:]), parent=root)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_takes_quiet_and_verbose(name):
    shown = _visible(_command(name))
    assert {"-q", "--quiet", "-v", "--verbose"} <= set(shown)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_what_a_command_writes_is_o_out(name):
    shown = _visible(_command(name))
    assert "--output" not in shown
    if "-o" in shown:
        assert shown["-o"].opts == ["-o", "--out"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_batch_is_the_images_per_inference_call_wherever_it_appears(name):
    shown = _visible(_command(name))
    if "--batch" in shown:
        assert "images" in shown["--batch"].help.lower() and "per inference call" in shown["--batch"].help


def test_the_other_batches_have_names_of_their_own():
    profile, compress = _visible(_command("profile")), _visible(_command("compress"))
    assert "--batch" not in profile and "comma-separated" in profile["--batches"].help
    assert "--batch" not in compress and "training" in compress["--train-batch"].help.lower()
    assert "--output-name" in _visible(_command("build"))
    for name in ("build", "export", "optimize", "infer", "run", "compare"):
        assert "--batch" in _visible(_command(name)), name


@pytest.mark.parametrize("args, param, value", [
    (["infer", "a", "b", "--output", "m.tif"], "output", Path("m.tif")),
    (["run", "a", "b", "--output", "masks"], "output", Path("masks")),
    (["build", "x", "-o", "o", "--output", "logits"], "output", "logits"),
    (["profile", "a", "--batch", "1,4"], "batch", "1,4"),
    (["compress", "x", "-o", "o", "--images", "i", "--val", "v", "--speedup", "2", "--batch", "4"], "batch", 4),
])
def test_the_former_names_still_parse_with_a_warning(args, param, value):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _parse(args).params[param] == value
    said = [str(w.message) for w in caught if w.category is RenamedOptionWarning]
    assert len(said) == 1 and f"{args[-2]} is now" in said[0]


def test_a_former_name_beside_the_new_one_is_refused():
    with pytest.raises(click.BadOptionUsage, match="former name of --output-name"):
        _parse(["build", "x", "-o", "o", "--output", "a", "--output-name", "b"])


def test_the_warning_for_a_former_name_is_printed_once(cpu_artifact, tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    args = ["infer", str(cpu_artifact), str(image), "--output", str(tmp_path / "m.png"), "--overlap", "16", "-q"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "edgekit: warning: --output is now -o/--out"
    assert len(captured.out.splitlines()) == 1 and (tmp_path / "m.png").is_file()


def test_quiet_and_verbose_exclude_each_other(cpu_artifact, capsys):
    assert main(["profile", str(cpu_artifact), "-q", "-v"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_a_stopped_build_under_quiet_prints_only_its_last_line_saying_it_stopped(tiny_recipe, tmp_path, capsys):
    """A TensorRT target without TensorRT: exit 0, and the one line left says the engine was not built."""
    out = tmp_path / "j"
    assert main(["build", str(tiny_recipe), "-o", str(out), "--target", "jetson-orin-nx", "--latency-runs", "0",
                 "-q"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stopped before the engine (no TensorRT here): {out}")
    assert lines[0].endswith(f"finish on the device: edgekit compile {out}")
    assert all(line.startswith("edgekit: warning:") for line in captured.err.splitlines() if line.strip())
    assert (out / "manifest.json").is_file()


def test_verbose_says_each_stage_and_normal_does_not(cpu_artifact, tmp_path, capsys):
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "c"), "--runtime", "onnxruntime", "-v"]) == 0
    verbose = capsys.readouterr()
    assert any(line.strip().startswith("[") and "s] compiling" in line for line in verbose.err.splitlines())
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "d"), "--runtime", "onnxruntime"]) == 0
    normal = capsys.readouterr()
    assert "compiling" not in normal.err  # no spinner where stderr is no terminal
    assert normal.out.splitlines()[-1].startswith("cpu (onnxruntime, fp32):")  # its final line
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "e"), "--runtime", "onnxruntime", "-q"]) == 0
    assert capsys.readouterr().out.splitlines() == [normal.out.splitlines()[-1].replace("/d/", "/e/")]


def test_a_log_gets_a_progress_line_now_and_then(cpu_artifact, tmp_path, capsys, monkeypatch):
    import edgekit.cli.console as console

    # stderr no terminal (a log): a line only once LOG_INTERVAL_S have passed since the last one
    monkeypatch.setattr(console, "LOG_INTERVAL_S", 3600.0)
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "c"), "--runtime", "onnxruntime"]) == 0
    assert "s] " not in capsys.readouterr().err
    monkeypatch.setattr(console, "LOG_INTERVAL_S", 0.0)
    with console.stage_progress("starting") as say:
        say("recover step 50/300")
    assert capsys.readouterr().err.strip().endswith("s] recover step 50/300")


def test_progress_is_drawn_on_a_terminal_and_not_under_quiet(cpu_artifact, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "c"), "--runtime", "onnxruntime"]) == 0
    assert "compiling" in capsys.readouterr().err
    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "d"), "--runtime", "onnxruntime", "-q"]) == 0
    assert "compiling" not in capsys.readouterr().err
