"""report.md's class legend: each class by index, name (class_<id> where none) and preview colour,
read back from the file the build writes."""
from __future__ import annotations

from edgekit.artifact.classes import class_colour
from edgekit.convert.report import BuildReport, StageRecord


def _legend(folder) -> list[str]:
    lines = (folder / "report.md").read_text().splitlines()
    at = lines.index("Classes (colours as `--preview` draws them):")
    return lines[at + 2:at + 2 + next((i for i, line in enumerate(lines[at + 2:]) if not line.startswith("|")),
                                      len(lines) - at - 2)]


def test_report_md_lists_each_class_with_its_name_and_colour(tmp_path):
    report = BuildReport("tiny.yaml", "cpu", "fp32", (StageRecord("export", 0.1),),
                         details={"classes": ["water", "", "cloud"]})
    report.write(tmp_path)
    hexes = ["#" + "".join(f"{v:02x}" for v in class_colour(i)) for i in range(3)]
    assert _legend(tmp_path) == ["| class | name | colour |", "|---|---|---|", f"| 0 | water | {hexes[0]} |",
                                 f"| 1 | class_1 | {hexes[1]} |", f"| 2 | cloud | {hexes[2]} |"]


def test_names_the_model_says_are_the_legend_when_the_build_gives_none(tmp_path):
    BuildReport("m.onnx", "cpu", "fp32", details={"contract": {"name": "m.onnx", "classes": ["person", "car"]}}).write(tmp_path)
    assert [row.split("|")[2].strip() for row in _legend(tmp_path)[2:]] == ["person", "car"]
    (tmp_path / "none").mkdir()
    BuildReport("m.onnx", "cpu", "fp32").write(tmp_path / "none")
    assert "Classes (" not in (tmp_path / "none" / "report.md").read_text()


def test_a_precision_fallback_ends_its_sentence_before_the_counts(tmp_path):
    stage = StageRecord("precision int8", 9.1, metrics={"qdq_pairs": 8, "fp16_nodes": 0, "calib_images": 2},
                        facts={"flavor": "openvino", "calib_method": "percentile",
                               "fallback": "max/fp16 (54.27) failed its check; kept percentile/fp16, 7 regions in float (0.43)"})
    BuildReport("m.onnx", "cpu", "int8", (stage,)).write(tmp_path)
    assert "(0.43). openvino flavor, 8 Q/DQ pairs" in (tmp_path / "report.md").read_text()


def test_seven_bit_weights_are_said_with_their_reason(tmp_path):
    from edgekit.convert.pipeline import _precision_record
    from edgekit.convert.precision import PrecisionResult, PrecisionSpec
    from edgekit.metrics import OutputError
    from edgekit.targets import load_target

    result = PrecisionResult(path=tmp_path / "q.onnx", precision="int8", flavor="onnxruntime", nodes_before=5,
                             nodes_after=9, qdq_pairs=2, fp16_nodes=0, calib_samples=4, seconds=1.0)
    for bits, said in ((7, True), (8, False)):
        spec = PrecisionSpec("int8", weight_bits=bits)
        record = _precision_record(result, spec, None, OutputError(0.1, 0.01, 0.02), load_target("cpu"), True, "", 1.0, None)
        BuildReport("m.onnx", "cpu", "int8", (record,)).write(tmp_path)
        assert ("weights at 7 bits: 8-bit weights failed the check on this CPU without VNNI" in (tmp_path / "report.md").read_text()) is said
