"""The one device-compatibility check: can this device build, or run, what an artifact needs?

Two callers, one rule set: ``edgekit compile`` compares the device with the artifact's target
profile before building an engine (:func:`needs_of_target`), and loading an artifact compares it
with the device its engine was built on (:func:`needs_of_engine`). Both end in
:func:`check_device`, which stops where nothing usable can come out and returns notes where the
difference only deserves a warning.

The TensorRT and JetPack version branches live in :func:`tensorrt_verdict` and
:func:`jetpack_major`, nowhere else:

- TensorRT 8.5 (JetPack 5): weakly typed, precision set by builder flags.
- TensorRT 10.3 (JetPack 6) and 10.x (desktop): strongly typed, precision read from the ONNX.
- TensorRT 11: strongly typed only; a desktop target on the 10 line accepts it (same ONNX).
- A serialized engine runs only on the TensorRT version that built it.
"""
from __future__ import annotations

__all__ = ["DeviceNeeds", "needs_of_target", "needs_of_engine", "check_device", "tensorrt_verdict", "jetpack_major"]

from dataclasses import dataclass

from edgekit.device import DeviceInfo
from edgekit.errors import ConfigError, DeviceMismatchError

# L4T release major -> JetPack major (/etc/nv_tegra_release starts with "# R36 (release)").
_JETPACK_OF_L4T = {"32": "4", "34": "5", "35": "5", "36": "6", "38": "7"}
STRONGLY_TYPED_FROM = 10  # TensorRT major from which precision comes from the ONNX's tensor types


@dataclass(frozen=True)
class DeviceNeeds:
    """What an artifact needs of the device it is compiled or run on.

    Attributes:
        what: names the artifact or target in messages ("the bundle is for jetson-orin-nx").
        tensorrt: a TensorRT line ("8.5", "10.3", "10") for a target; the exact version for an engine.
        exact: an engine: only the TensorRT version that built it loads it.
        compute_capability: the GPU architecture ("8.7").
        jetpack: the JetPack major ("6"), None off Jetson.
        dla_cores: DLA cores the target has (None: not checked).
        fix: the step that solves a stop, appended to its message.
    """

    what: str
    tensorrt: str | None = None
    exact: bool = False
    compute_capability: str | None = None
    jetpack: str | None = None
    dla_cores: int | None = None
    fix: str = ""


def needs_of_target(target) -> DeviceNeeds:
    """What compiling for ``target`` (a :class:`edgekit.targets.Target`) needs of this device."""
    return DeviceNeeds(f"the bundle is for {target.name}", target.tensorrt, False, target.compute_capability,
                       target.jetpack.split(".")[0] if target.jetpack else None, target.dla_cores,
                       "build a bundle for this device's target (`edgekit targets` lists them)")


def needs_of_engine(manifest, folder) -> DeviceNeeds:
    """What running the compiled engine of ``manifest`` (in ``folder``) needs of this device."""
    built = manifest.device or {}
    return DeviceNeeds(f"{folder} holds an engine built on {built.get('gpu_name') or 'another GPU'}",
                       manifest.versions.get("tensorrt"), True, built.get("compute_capability"),
                       jetpack_major(built.get("jetpack")), None,
                       f"rebuild it here with `edgekit compile {folder}`, or use --backend onnxruntime")


def jetpack_major(l4t_release: str | None) -> str | None:
    """JetPack major version from the L4T release line ("R36 (release)" -> "6"), None off Jetson."""
    if not l4t_release:
        return None
    digits = "".join(ch for ch in l4t_release.split()[0] if ch.isdigit())
    return _JETPACK_OF_L4T.get(digits)


def _parts(version: str) -> list[str]:
    return version.split(".")


def tensorrt_verdict(wanted: str, have: str, exact: bool = False) -> str:
    """``"ok"``, ``"note"`` (usable, worth a warning) or ``"stop"`` for TensorRT ``have`` against ``wanted``.

    Args:
        wanted: a target's line ("8.5", "10.3", "10"), or with ``exact`` the version an engine was built with.
        have: this device's version ("10.3.0.30").
    """
    w, h = _parts(wanted), _parts(have)
    if exact:
        return "ok" if h[:3] == w[:3] else "stop"
    if h[: len(w)] == w:
        return "ok"
    typing = [int(v[0]) >= STRONGLY_TYPED_FROM for v in (w, h)]
    if w[0] == h[0]:
        return "note"  # another minor of the same major: the same ONNX builds
    if len(w) == 1 and all(typing) and int(h[0]) > int(w[0]):
        return "note"  # a desktop line ("10") on a newer strongly typed TensorRT (11)
    return "stop"  # another typing (8.x flags vs strongly typed), or a pinned line's other major


def check_device(needs: DeviceNeeds, device: DeviceInfo, dla_cores: int | None = None, use_dla: bool = False) -> list[str]:
    """Compare ``device`` with what an artifact ``needs``: raise where nothing usable can come out, else
    return warnings.

    Args:
        dla_cores: the device's DLA cores (None: unknown, not checked).
        use_dla: a DLA core was requested.

    Raises:
        DeviceMismatchError: no TensorRT, another TensorRT line (or another version, for an engine),
            another GPU architecture, another JetPack major.
        ConfigError: DLA requested where the target or the device has none.
    """
    notes: list[str] = []
    stop = lambda why: DeviceMismatchError(f"{needs.what} ({why}); {needs.fix}")  # noqa: E731
    if needs.tensorrt:
        if device.tensorrt is None:
            raise stop(f"TensorRT {needs.tensorrt}, but TensorRT is not installed here")
        verdict = tensorrt_verdict(needs.tensorrt, device.tensorrt, needs.exact)
        if verdict == "stop":
            raise stop(f"TensorRT {needs.tensorrt}, this device has TensorRT {device.tensorrt}")
        if verdict == "note":
            notes.append(f"{needs.what} on TensorRT {needs.tensorrt}, this device has {device.tensorrt}; "
                         f"building with {device.tensorrt}")
    if needs.compute_capability and device.compute_capability and device.compute_capability != needs.compute_capability:
        raise stop(f"compute capability {needs.compute_capability}, this GPU is {device.gpu_name} "
                   f"({device.compute_capability})")
    jp = jetpack_major(device.jetpack)
    if needs.jetpack and jp and jp != needs.jetpack:
        raise stop(f"JetPack {needs.jetpack}, this device runs JetPack {jp}")
    if needs.jetpack and not jp:
        notes.append(f"{needs.what}, a Jetson on JetPack {needs.jetpack}; this device is not a Jetson")
    if use_dla and (needs.dla_cores == 0 or dla_cores == 0):
        where = "the target has" if needs.dla_cores == 0 else "this device has"
        raise ConfigError(f"DLA requested but {where} no DLA cores ({needs.what}); compile with --no-dla")
    if needs.dla_cores is not None and dla_cores is not None and needs.dla_cores != dla_cores:
        notes.append(f"{needs.what} with {needs.dla_cores} DLA cores, this device reports {dla_cores}")
    return notes
