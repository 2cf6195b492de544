"""The quantization libraries' chatter, silenced: ONNX Runtime's prints and advice, ModelOpt's INFO
logs and tqdm bars (the precision stage's lowerings and `edgekit optimize`'s candidates)."""
from __future__ import annotations

__all__ = ["quiet"]

import contextlib
import io


@contextlib.contextmanager
def quiet():
    """Silence the libraries' chatter: ORT's prints and advice, ModelOpt's INFO logs and tqdm bars.

    Errors still propagate as exceptions; only what they print on the way is dropped.
    """
    import logging

    modelopt = logging.getLogger("modelopt")
    level = modelopt.level
    modelopt.setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
        modelopt.setLevel(level)
