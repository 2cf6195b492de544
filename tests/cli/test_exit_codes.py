"""Exit codes as README.md's "Exit codes" states them, on real failing cases: 2, bad input (nothing
written); 1, the input was fine but a check failed, nothing held the constraints, or the run
stopped part way."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit import errors
from edgekit.cli.main import main
from edgekit.errors import CheckError, DetectionOutputError, EdgekitError, RunError

BAD_INPUT = (errors.ConfigError, errors.SourceError, errors.InputError, errors.CalibrationError, errors.ArtifactError,
             errors.DeviceMismatchError, errors.BackendUnavailableError, errors.DetectionError)
CHECK_FAILED = (errors.ParityError, errors.InfeasibleError, errors.RunError, errors.DetectionOutputError)


def test_every_error_class_has_the_status_of_its_kind():
    for cls in BAD_INPUT:
        assert cls.exit_code == 2 and not issubclass(cls, CheckError), cls
    for cls in CHECK_FAILED:
        assert cls.exit_code == 1 and issubclass(cls, CheckError), cls
    classified = {c.__name__ for c in (*BAD_INPUT, *CHECK_FAILED, EdgekitError, CheckError)}
    assert set(errors.__all__) == classified  # a new class must be put in one kind here


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_build_whose_check_fails_exits_1_and_writes_nothing(tmp_path, capsys):
    """The reparameterization of tests.cli.factories:drifting changes the outputs: ParityError."""
    out = tmp_path / "a"
    args = ["build", "tests.cli.factories:drifting", "-o", str(out), "--input-size", "32", "--task", "segmentation",
            "--mean", "0,0,0", "--std", "1,1,1", "--latency-runs", "0"]
    assert main(args) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("edgekit: error:") and "changed the outputs" in err[0]
    assert not out.exists()


def _nan_detector(folder):
    """A sealed cpu detection artifact whose YOLOv8-layout output holds a NaN score."""
    from edgekit.artifact.manifest import Manifest, TensorSpec, seal
    from edgekit.preprocess import Preprocess
    from tests.detect.detect_fixtures import constant_onnx

    out = np.zeros((1, 6, 8), np.float32)
    out[0, :4] = [[16], [16], [4], [4]]
    out[0, 4, 1] = np.nan
    folder.mkdir()
    constant_onnx(folder / "model.onnx", {"output0": out}, size=32)
    seal(folder, Manifest(
        target="cpu", backend="onnxruntime", precision="fp32", model_file="model.onnx",
        inputs=(TensorSpec("images", (1, 3, 32, 32)),), outputs=(TensorSpec("output0", (1, 6, 8)),),
        preprocess=Preprocess(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        task="detection", classes=("a", "b"), tile=(32, 32), stride=1))
    return folder


def test_a_detector_returning_nan_scores_is_a_failed_run(tmp_path, capsys):
    art = _nan_detector(tmp_path / "det")
    np.save(tmp_path / "img.npy", np.zeros((32, 32, 3), np.uint8))
    args = ["infer", str(art), str(tmp_path / "img.npy"), "-o", str(tmp_path / "boxes.json"), "--det-format", "yolov8",
            "--overlap", "8", "--no-progress"]
    assert main(args) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "NaN scores" in err[0]
    assert not (tmp_path / "boxes.json").exists()
    with pytest.raises(errors.DetectionError):  # still a DetectionError for code that catches those
        raise DetectionOutputError("x")


def test_a_failed_cuda_call_is_a_failed_run():
    from edgekit.runtime.trt import cuda_call

    with pytest.raises(RunError, match="CUDA call failed") as caught:
        cuda_call((2, None))  # cuda-python's (error, value) with cudaErrorMemoryAllocation
    assert caught.value.exit_code == 1
    assert cuda_call((0, 7)) == 7
