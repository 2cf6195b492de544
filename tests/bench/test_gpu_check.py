"""bench/gpu_check.py decides, on any machine, which GPU checks it runs and why; --dry-run runs none."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _env(**changes) -> dict:
    env = {"torch": True, "cuda": False, "gpu": None, "tensorrt": False, "ort_providers": ["CPUExecutionProvider"],
           "build_extra": True, "cuda_driver_gpu": None}
    return env | changes


def test_torch_only_gpu_machine_runs_the_torch_checks_and_says_why_not_the_others():
    gpu = _module()
    plan = dict(gpu.plan(_env(cuda=True, gpu="H200", cuda_driver_gpu="H200"), quick=False))
    torch_rows = [name for name in plan if name.startswith("torch-cuda")]
    assert len(torch_rows) == 6 and all(plan[name] is None for name in torch_rows)  # 3 dtypes x compile off/on
    assert "onnxruntime-gpu" in plan["ort-cuda fp32"]
    assert all("tensorrt does not import" in why for name, why in plan.items() if name.startswith("tensorrt"))
    assert plan["reference: cpu"] is None


def test_without_cuda_every_gpu_check_is_skipped_with_its_reason():
    gpu = _module()
    plan = dict(gpu.plan(_env(ort_providers=["CUDAExecutionProvider", "CPUExecutionProvider"], tensorrt=True), quick=True))
    assert len([n for n in plan if n.startswith("torch-cuda")]) == 3  # --quick: no torch.compile rows
    assert all(why == "no CUDA device visible to torch" for n, why in plan.items() if n.startswith(("torch-cuda", "tensorrt")))
    assert "no CUDA device" in plan["ort-cuda fp32"]  # onnxruntime-gpu lists CUDA without a GPU


def test_dry_run_lists_every_check_with_its_reason_and_runs_nothing(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = report["rows"]
    names = [r["check"] for r in rows]
    assert names == [name for name, _ in _module().plan(report["environment"], quick=False)]
    assert {r["status"] for r in rows} <= {"would run", "skipped"}
    assert all(r["reason"] for r in rows) and not any(r["figures"] for r in rows)
    for row in rows:
        assert row["check"] in done.stdout and row["reason"] in done.stdout
