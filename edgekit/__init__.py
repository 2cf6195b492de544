"""edgekit: from a trained PyTorch vision model to a fast, verified artifact on a target device."""

__version__ = "0.1.0"
