"""The commands of README.md and docs/*.md, as a reader copies them.

Every `edgekit ...` line in a fenced block (also after `&&`, after `VAR=value`, and as the argument
of `docker run ... edgekit-jetson`) must name a command edgekit has and parse against that
command's real click object: no unknown option, no value outside a choice, no required option
missing. The cheap ones then run exactly as written, in a folder where the demo recipe's name
resolves to a tiny stand-in (a 256-px timm test_convnext + FPN, through EDGEKIT_PATH, as a team's
own recipe would), on the repository's own calibration tiles and sample image: README's demo
(`build`, then `infer`), docs/tiling.md's infer, profile, --batch and run lines. The expensive
ones (a real FastViT build, TensorRT, Ray clusters, other people's files) are only parsed.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import click
import numpy as np
import pytest

from edgekit.cli.main import COMMANDS, cli, main
from tests.conftest import write_recipe

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
STARTS = re.compile(r"(^|&&\s*)([A-Z_]+=\S+\s+)*edgekit\s|^docker run .* edgekit-jetson ")
ENV = re.compile(r"[A-Z_]+=\S+")


def doc_commands(text: str) -> list[tuple[str, list[str]]]:
    """(line, edgekit's arguments) for every edgekit command in the fenced blocks of ``text``."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not STARTS.search(line):
                continue
            segment: list[str] = []
            for token in [*shlex.split(line, comments=True), "&&"]:
                if token != "&&":
                    segment.append(token)
                    continue
                while segment and ENV.fullmatch(segment[0]):
                    segment.pop(0)
                if segment[:1] == ["edgekit"]:
                    found.append((line, segment[1:]))
                elif segment[:2] == ["docker", "run"] and "edgekit-jetson" in segment:
                    found.append((line, segment[segment.index("edgekit-jetson") + 1:]))
                segment = []
    return found


def parse(args: list[str]) -> click.Context:
    """Parse ``edgekit ARGS`` against the real command, running nothing (click's errors propagate)."""
    root = click.Context(cli, info_name="edgekit")
    command = cli.get_command(root, args[0])
    assert command is not None, f"`edgekit {args[0]}` is no command; edgekit has: {', '.join(COMMANDS)}"
    return command.make_context(args[0], list(args[1:]), parent=root)


DOCUMENTED = [(doc.relative_to(ROOT).as_posix(), line, args) for doc in DOCS for line, args in
              doc_commands(doc.read_text())]


def doc_line(doc: str, start: str, exact: bool = False) -> str:
    """The one command line of ``doc`` that starts with ``start`` (``exact``: whose command is exactly
    ``start``, comment aside), so that an edited doc fails here, naming the line it misses."""
    lines = {line for d, line, args in DOCUMENTED if d == doc and
             (" ".join(["edgekit", *args]) == start if exact else line.startswith(start))}
    assert len(lines) == 1, f"{doc}: expected one command line {start!r}, found {sorted(lines)}"
    return lines.pop()


def run_line(line: str, capsys) -> list[tuple[int, str, str]]:
    """Run each edgekit command of a documented line in this process: (status, stdout, stderr) each."""
    results = []
    for _, args in doc_commands(f"```\n{line}\n```\n"):
        status = main(args)
        out, err = capsys.readouterr()
        results.append((status, out, err))
    return results


# --- every documented command parses -------------------------------------------------------------

def test_the_extractor_finds_the_docs_commands():
    docs = {doc for doc, _, _ in DOCUMENTED}
    assert {"README.md", "docs/tiling.md", "docs/detection.md", "docs/jetson.md"} <= docs
    assert [args[0] for doc, _, args in DOCUMENTED if doc == "README.md"][:2] == ["build", "infer"]
    # after &&, after VAR=value, through docker run, with a trailing comment dropped
    assert doc_commands("```\nA=1 B=x:2 edgekit run a b -o c   # note\n```\n") == [
        ("A=1 B=x:2 edgekit run a b -o c   # note", ["run", "a", "b", "-o", "c"])]
    assert doc_commands("```\ndocker run --rm -v /m:/m edgekit-jetson infer /m/a /m/b -o /m/c\n"
                        "docker build -t edgekit-jetson .\n```\n") == [
        ("docker run --rm -v /m:/m edgekit-jetson infer /m/a /m/b -o /m/c", ["infer", "/m/a", "/m/b", "-o", "/m/c"])]
    assert doc_commands("```\nedgekit/   the package's code\n```\n") == []


@pytest.mark.parametrize("doc, line, args", DOCUMENTED,
                         ids=[f"{doc}:{' '.join(args)[:60]}" for doc, _, args in DOCUMENTED])
def test_every_documented_command_parses(doc, line, args):
    assert args and args[0] in COMMANDS, f"{doc}: `{line}` names no edgekit command"
    try:
        parse(args)
    except click.exceptions.Exit:  # --help, --version
        pass
    except click.ClickException as exc:
        pytest.fail(f"{doc}: `{line}`: {exc.format_message()}")


@pytest.mark.parametrize("args, error", [
    (["infer", "a", "b", "-o", "m", "--tile-batch", "8"], click.NoSuchOption),
    (["infer", "a", "b", "-o", "m", "--blend", "median"], click.BadParameter),
    (["infer", "a", "b"], click.MissingParameter),
    (["build", "x", "-o", "o", "--batch", "eight"], click.BadParameter),
])
def test_a_wrong_command_line_does_not_parse(args, error):
    with pytest.raises(error):
        parse(args)


def test_the_readme_lists_every_command():
    """README's commands table names every command edgekit has, and nothing else."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Commands"):].split("\n## ")[0]
    named = set(re.findall(r"`edgekit (\w+)", table)) | set(re.findall(r" / (\w+)(?=[ `])", table))
    assert named == set(COMMANDS), f"missing: {set(COMMANDS) - named}; unknown: {named - set(COMMANDS)}"


def test_every_command_has_help(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in COMMANDS:
        assert name in listing
        assert main([name, "--help"]) == 0
        assert capsys.readouterr().out.startswith(f"Usage: edgekit {name} ")


def test_models_and_targets_run(capsys):
    assert main(["models"]) == 0
    assert "fastvit_sa12_fpn" in capsys.readouterr().out
    assert main(["targets"]) == 0
    assert "jetson-orin-nx" in capsys.readouterr().out


def test_the_set_up_commands_are_the_ones_ci_and_the_demo_run():
    """README's two set-up commands: the demo, and the test command `.ci/run` runs (quietly)."""
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set up"):].split("\n## ")[0]
    demo, tests = [line for block in FENCE.findall(setup) for line in block.splitlines()]
    assert demo.startswith("python3 -m venv .venv && ") and 'pip install -e ".[build]"' in demo
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.replace("pip install -q -e", "pip install -e") == tests


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_links_resolve(doc):
    """Every relative link names a file that exists, and a #section that the file has."""
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, section = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: link to missing {target}"
        if section:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert section in {anchor(h) for h in headings}, f"{doc.name}: no section #{section} in {path}"


def test_the_readme_is_short_and_every_benchmark_is_dated():
    """README stays a first reader's page (about 10 KB) and reaches docs/benchmarks.md, where every
    table's section names the date it was measured."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_752, "README.md is over about 10 KB: move the detail to docs/"
    assert "](docs/benchmarks.md)" in readme
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    sections = re.split(r"^#{2,3} ", text, flags=re.M)[1:]
    tables = [s for s in sections if "\n|---" in s]
    assert len(tables) >= 6
    for section in tables:
        assert re.search(r"20\d\d-\d\d-\d\d", section), f"no date in benchmarks.md's {section.splitlines()[0]!r}"


# --- the cheap ones run, as written ---------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A working folder where `fastvit_sa12_fpn` is a tiny 256-px segmenter (EDGEKIT_PATH), with the
    repository's calib/ and samples/, and small images named as the docs name them."""
    from PIL import Image
    import tifffile

    work = tmp_path_factory.mktemp("docs")
    (work / "team" / "models").mkdir(parents=True)
    write_recipe(work / "team" / "models", name="fastvit_sa12_fpn", size=256)
    for name in ("calib", "samples"):
        (work / name).symlink_to(ROOT / name)
    rng = np.random.default_rng(0)
    tifffile.imwrite(work / "scene.tif", rng.integers(0, 255, (300, 420, 3), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(work / "wafer_0042.png")
    for folder in ("scans", "scenes", "scenes/north"):
        (work / folder).mkdir()
    for path in ("scans/a.png", "scans/b.png"):
        Image.fromarray(rng.integers(0, 255, (256, 300, 3), dtype=np.uint8)).save(work / path)
    for path in ("scenes/x.tif", "scenes/north/x.tif"):
        tifffile.imwrite(work / path, rng.integers(0, 255, (280, 300, 3), dtype=np.uint8))
    before = os.environ.get("EDGEKIT_PATH"), Path.cwd()
    os.environ["EDGEKIT_PATH"] = str(work / "team")
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(before[1])
        if before[0] is None:
            os.environ.pop("EDGEKIT_PATH")
        else:
            os.environ["EDGEKIT_PATH"] = before[0]


@pytest.fixture(scope="module")
def demo(stand_in):
    """README's demo command (its edgekit part), run as written on the stand-in."""
    line = doc_line("README.md", 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[build]" && ')
    return [main(args) for _, args in doc_commands(f"```\n{line}\n```\n")]


@pytest.mark.slow
def test_the_readme_demo_runs(stand_in, demo):
    from PIL import Image

    assert demo == [0, 0]
    out = stand_in / "out" / "demo"
    for name in ("manifest.json", "model.onnx", "report.json", "report.md", "mask.png", "preview.png"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["tile"] == [256, 256]  # the stand-in, at int8
    assert Image.open(out / "mask.png").size == Image.open(ROOT / "samples" / "bluemarble_east.jpg").size


@pytest.fixture(scope="module")
def sa12(stand_in, demo):
    """docs/ build `out/sa12` with README's demo command under another name: the same artifact."""
    demo_build = next(args for _, args in doc_commands((ROOT / "README.md").read_text()) if args[0] == "build")
    sa12_build = doc_commands(f"```\n{doc_line('docs/sources.md', 'edgekit build fastvit_sa12_fpn')}\n```\n")[0][1]
    assert sa12_build == [a if a != "out/demo" else "out/sa12" for a in demo_build]
    shutil.copytree(stand_in / "out" / "demo", stand_in / "out" / "sa12")
    return stand_in / "out" / "sa12"


@pytest.mark.slow
@pytest.mark.parametrize("start, outputs", [
    ("edgekit infer out/sa12 scene.tif", ["scene_mask.tif"]),
    ("edgekit infer out/sa12 wafer_0042.png", ["mask.png", "probs.tif", "preview.png"]),
    ("edgekit infer out/sa12 scans/", ["masks/a.png", "masks/b.png"]),
    ("edgekit profile out/sa12", ["prof.json", "prof.png"]),
])
def test_tiling_commands_run(sa12, stand_in, capsys, start, outputs):
    for name in outputs:
        (stand_in / name).unlink(missing_ok=True)
    [(status, out, err)] = run_line(doc_line("docs/tiling.md", start), capsys)
    assert status == 0, err
    for name in outputs:
        assert (stand_in / name).is_file(), name


@pytest.mark.slow
def test_batch_means_tiles_per_inference_of_a_dynamic_artifact(sa12, stand_in, capsys):
    """docs/tiling.md's --batch pair runs; the old README line (--batch 8 on a batch-1 artifact) is
    refused in one line that names the way out."""
    build, infer = (doc_line("docs/tiling.md", s) for s in ("edgekit build", "edgekit infer out/sa12_dyn"))
    assert "--batch dynamic" in build and "--batch 8" in infer
    [(status, _, err)] = run_line(build, capsys)
    assert status == 0, err
    [(status, out, err)] = run_line(infer, capsys)
    assert status == 0 and "batch 8" in out, err
    status = main(["infer", "out/sa12", "scene.tif", "-o", "scene_mask.tif", "--batch", "8"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "--batch dynamic" in err


@pytest.mark.slow
def test_run_and_its_rerun(sa12, stand_in, capsys):
    first = doc_line("docs/tiling.md", "edgekit run out/sa12 scenes/ -o masks/ --recursive", exact=True)
    again = doc_line("docs/tiling.md", "edgekit run out/sa12 scenes/ -o masks/", exact=True)
    shutil.rmtree(stand_in / "masks", ignore_errors=True)
    [(status, out, err)] = run_line(first, capsys)
    assert status == 0, err
    assert (stand_in / "masks" / "x.tif").is_file() and (stand_in / "masks" / "north" / "x.tif").is_file()
    rows = [json.loads(r) for r in (stand_in / "masks" / "manifest.jsonl").read_text().splitlines()]
    assert sum(r.get("status") == "done" for r in rows) == 2
    [(status, out, err)] = run_line(again, capsys)
    assert status == 0 and "0 done" in out, err
