"""The device side: an artifact compiled for the machine that runs it (ONNX Runtime plan on the
cpu target, TensorRT engine on a GPU). Imports no torch."""
from edgekit.compile.stage import CompileSettings, CompileWarning, compile_artifact

__all__ = ["CompileSettings", "CompileWarning", "compile_artifact"]
