"""The compress report's Markdown page: long layer lists are cut, and say so."""
from edgekit.compress.report import CompressReport, markdown


def _report(layers: int) -> CompressReport:
    figures = {"latency_ms": 10.0, "size_mb": 1.0, "params": 100, "macs": 1000}
    prune = {"family": "fastvit", "layers": {f"backbone.layer{i}": [64, 32] for i in range(layers)}, "heads": {},
             "left": ["attention heads kept"]}
    return CompressReport(source="demo", target="cpu", level=1, goal={"speedup": 1.5}, plan="prune50",
                          before=figures, after={**figures, "latency_ms": 5.0},
                          accuracy={"metric": "mIoU", "before": 0.7, "after": 0.69, "drop": 1.0, "agreement": 0.99},
                          latency_kind="measured", runtime="ONNX Runtime 1.24.4", changes={"prune": prune})


def test_a_long_layer_list_is_cut_and_says_how_much_is_left_out():
    page = markdown(_report(45))
    assert page.count("  - backbone.layer") == 40 and "and 5 more (all in report.json)" in page
    short = markdown(_report(3))
    assert short.count("  - backbone.layer") == 3 and "more (all in report.json)" not in short


def test_every_attempt_is_listed_with_its_figures():
    from dataclasses import replace

    tried = ({"plan": "prune50", "speedup": 1.52, "metric": 0.6947, "drop": 0.53, "steps": 300, "seconds": 240.0,
              "holds": False},
             {"plan": "prune62", "speedup": 1.56, "metric": 0.6959, "drop": 0.41, "steps": 300, "seconds": 250.0,
              "holds": True},
             {"plan": "+2:4", "metric": 0.695, "drop": 0.5, "steps": 200})
    page = markdown(replace(_report(1), goal={"speedup": 1.5, "max_drop": 0.5}, tried=tried))
    assert "| prune50 | 1.52x | 69.47 | -0.53 | 300 | 4.0 | misses --max-drop |" in page
    assert "| prune62 | 1.56x | 69.59 | -0.41 | 300 | 4.2 | holds |" in page
    assert "| +2:4 |  | 69.50 | -0.50 | 200 |  | holds |" in page
