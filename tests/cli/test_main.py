"""edgekit.cli.main: what a command prints of the warnings raised while it runs."""
import warnings

from edgekit.cli.main import _edgekit_warnings
from edgekit.cli.options import RenamedOptionWarning


def _raise(message: str, category: type[Warning], times: int) -> None:
    for _ in range(times):  # as a library warns with a stacklevel that names its caller in edgekit
        warnings.warn_explicit(message, category, "edgekit/compress/lowrank.py", 137, module="edgekit.compress.lowrank")


def test_other_libraries_warn_once_and_their_deprecations_not_at_all(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown.append(str(message)))
    pending: list[str] = []
    with _edgekit_warnings(pending):
        _raise("You are using the legacy TorchScript-based ONNX export", DeprecationWarning, 3)
        _raise("a library's advice", UserWarning, 3)
        _raise("--old is now --new", RenamedOptionWarning, 2)
    assert shown == ["a library's advice"]  # printed the usual way, once
    assert pending == ["--old is now --new"]  # edgekit's own: kept for main to print at the end
