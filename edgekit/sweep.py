"""`edgekit sweep`: build and profile recipes x precisions x input sizes for one target.

Each combination is built (`edgekit build`), then all are profiled on this machine
(`profile_artifact`) in turns: the timing is cut into rounds, each round times every artifact
once, and a row's p50 is the median of its rounds' (its p99 the highest), so that a shared
machine's drifting load falls on every row alike (timed one after another, the DINOv3 sweep's
ViT/ConvNeXt ratio came out 1.16x against 1.33x in turns). Each is scored against ground-truth
masks where the recipe has trained weights and a validation set with masks is given; a detector
is scored on the validation images with COCO mAP@0.5 against the boxes of the first artifact of
the same model and size (its reference, as in `edgekit compare`; the scorer of `edgekit optimize`);
otherwise its row says "speed only". The report is a dataclass;
the table, Markdown, JSON and the plot (latency against accuracy, or against size when no row
has an accuracy, with the Pareto front marked) are made from it.
"""
from __future__ import annotations

__all__ = ["SweepConfig", "SweepRow", "SweepReport", "sweep", "pareto_front", "plot_sweep"]

import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from edgekit.errors import ConfigError, EdgekitError
from edgekit.preprocess import InputOptions

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how long to time each artifact.

    Attributes:
        sizes: input sizes (None: the recipe's own).
        calib: calibration images (int8 rows need them).
        val: validation images with ``masks/`` (accuracy of trained recipes).
        warmup_s / duration_s: timing of each artifact (see edgekit.profile): the warm-up before
            each round, the duration split across the rounds.
        rounds: timing rounds, each over every artifact in turn.
        keep: folder to keep the artifacts in (None: a temporary one).
        inputs: the input declared on the command line (``--mean --std --channel-order --scale --bands``).
        task: ``--task`` for every model (None: each one's own, else its output shapes; :mod:`edgekit.convert.task`).
    """

    target: str = "cpu"
    precisions: tuple[str, ...] = ("fp32",)
    sizes: tuple[tuple[int, int] | None, ...] = (None,)
    calib: Path | None = None
    val: Path | None = None
    warmup_s: float = 0.5
    duration_s: float = 2.0
    rounds: int = 3
    keep: Path | None = None
    inputs: InputOptions = InputOptions()
    task: str | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"sweep needs at least one timing round, not {self.rounds}")


@dataclass(frozen=True)
class SweepRow:
    """One recipe at one precision and input size on the target.

    Attributes:
        p50_ms / p99_ms: latency per image (batch 1), end to end.
        mpx_s: throughput in megapixels per second.
        size_mb: deployable model file; params: parameters after reparameterization.
        accuracy: in points, ``metric`` says what: mIoU against ground truth, or a detector's
            mAP@0.5 against its reference artifact's boxes; None: speed only.
        runtime: what ran it (the artifact's backend: the build's choice on the cpu target,
            OpenVINO for bf16).
    """

    recipe: str
    precision: str
    input_hw: tuple[int, int]
    p50_ms: float
    p99_ms: float
    mpx_s: float
    size_mb: float
    params: int | None
    accuracy: float | None
    metric: str = "mIoU vs ground truth"
    runtime: str = ""

    @property
    def label(self) -> str:
        return f"{self.recipe} {self.input_hw[0]}x{self.input_hw[1]} {self.precision}"

    def to_dict(self) -> dict:
        return asdict(self) | {"accuracy_note": self.metric if self.accuracy is not None else "speed only"}


@dataclass(frozen=True)
class SweepReport:
    target: str
    device: str
    rows: tuple[SweepRow, ...]

    HEADER = ("recipe", "input", "precision", "p50 ms", "p99 ms", "Mpx/s", "size MB", "params M", "accuracy")

    def table_rows(self) -> list[list[str]]:
        return [[r.recipe, f"{r.input_hw[0]}x{r.input_hw[1]}", r.precision, f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
                 f"{r.mpx_s:.2f}", f"{r.size_mb:.1f}", "-" if r.params is None else f"{r.params / 1e6:.1f}",
                 "speed only" if r.accuracy is None else f"{r.accuracy:.2f} {r.metric.split()[0]}"] for r in self.rows]

    def to_markdown(self) -> str:
        runtimes = sorted({r.runtime for r in self.rows if r.runtime}) or ["onnxruntime"]
        lines = [f"Sweep on {self.target} ({self.device}), batch 1, end-to-end latency on each artifact's runtime "
                 f"({', '.join(runtimes)}: the build's choice, in the JSON per row).", "",
                 "| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in self.table_rows()]) + "\n"

    def to_dict(self) -> dict:
        return {"target": self.target, "device": self.device, "rows": [r.to_dict() for r in self.rows]}

    def write_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def sweep(recipes: list[str], config: SweepConfig = SweepConfig(), progress: Progress | None = None) -> SweepReport:
    """Build and profile every recipe x precision x size; see SweepReport."""
    from edgekit.targets import load_target

    say = progress or (lambda _m: None)
    target = load_target(config.target)
    if target.is_tensorrt:
        raise ConfigError(f"sweep measures on this machine; {target.name} needs its device: run the sweep there "
                          "(or --target cpu here)")
    if "int8" in config.precisions and config.calib is None:
        raise ConfigError("--precision int8 needs a calibration set: --calib FOLDER")
    with tempfile.TemporaryDirectory(prefix="edgekit-sweep-") as tmp:
        root = Path(config.keep) if config.keep else Path(tmp)
        built = [_build(recipe, size, precision, config, root, say)
                 for recipe in recipes for size in config.sizes for precision in config.precisions]
        timings = _time_in_turns([b[2] for b in built], config, say)
        rows = tuple(_row(*b, timing, config, _reference(b, built)) for b, timing in zip(built, timings))
    from edgekit.machine import cpu_name

    return SweepReport(target.name, cpu_name(), rows)


def _build(recipe: str, size, precision: str, config: SweepConfig, root: Path, say: Progress):
    from edgekit.convert.pipeline import BuildConfig, build

    name = Path(recipe).stem
    folder = root / f"{name}-{'native' if size is None else f'{size[0]}x{size[1]}'}-{precision}"
    say(f"build {name} {precision}{'' if size is None else f' {size[0]}x{size[1]}'}")
    built = build(recipe, folder, BuildConfig(target=config.target, precision=precision, input_size=size,
                                              calib=config.calib, val=config.val, latency_runs=0,
                                              inputs=config.inputs, task=config.task), progress=say)
    return name, precision, folder, built


def _time_in_turns(folders: list[Path], config: SweepConfig, say: Progress) -> list[list]:
    """Every artifact's profile of each round (round r times all of them before round r + 1)."""
    from edgekit.profile import ProfileConfig, TimingConfig, profile_artifact

    timing = TimingConfig(warmup_s=config.warmup_s, duration_s=config.duration_s / config.rounds, min_iterations=3)
    runs: list[list] = [[] for _ in folders]
    for r in range(config.rounds):
        say(f"time {len(folders)} artifacts in turns, round {r + 1} of {config.rounds}")
        for i, folder in enumerate(folders):
            runs[i].append(profile_artifact(folder, ProfileConfig(timing=timing, power=False)))
    return runs


def _reference(entry: tuple, built: list[tuple]) -> Path:
    """The model file of the first artifact built of ``entry``'s model at its input size."""
    name, _, _, result = entry
    first = next(b for b in built if b[0] == name and tuple(b[3].manifest.tile) == tuple(result.manifest.tile))
    return first[2] / first[3].manifest.model_file


def _row(name: str, precision: str, folder: Path, built, profiles: list, config: SweepConfig,
         reference: Path) -> SweepRow:
    batches = [p.batches[0] for p in profiles]
    per_image = batches[0].batch
    params = next((s.params for s in built.report.stages if s.stage == "source"), None)
    model = folder / built.manifest.model_file
    return SweepRow(name, precision, tuple(profiles[0].input_hw),
                    statistics.median(b.end_to_end.p50 for b in batches) / per_image,
                    max(b.end_to_end.p99 for b in batches) / per_image, statistics.median(b.mpx_per_s for b in batches),
                    model.stat().st_size / 1e6, params, *_accuracy(built, model, config, reference), built.manifest.backend)


def _accuracy(built, model: Path, config: SweepConfig, reference: Path) -> tuple[float | None, str]:
    """(points, what they are): mIoU against ground truth, for trained weights and a validation set
    with masks; for a detector, mAP@0.5 against the ``reference`` model's boxes on the validation images.
    A bf16 artifact is scored computing in bf16 (on OpenVINO), as it runs."""
    from edgekit.evaluate import ValidationData
    from edgekit.optimize.evaluate import Evaluator

    m = built.manifest
    precision = "bf16" if m.precision == "bf16" else "fp32"
    batch = m.batch if isinstance(m.batch, int) else 1
    if m.task == "detection":
        if config.val is None:
            return None, ""
        data = ValidationData(config.val, tuple(m.tile), m.preprocess, batch, ground_truth=False)
        what = f"mAP50 vs {reference.parent.name.rsplit('-', 1)[-1]}'s boxes"
        return 100 * Evaluator(reference, data, "detection").accuracy(model, precision).metric, what
    trained = bool(built.report.details.get("source", {}).get("checkpoint")) or _recipe_trained(built)
    if not trained or config.val is None or not (Path(config.val) / "masks").is_dir():
        return None, ""
    data = ValidationData(config.val, tuple(m.tile), m.preprocess, batch)
    evaluator = Evaluator(model, data, m.task)
    scored = evaluator.accuracy(model, precision) if precision == "bf16" else evaluator.reference
    return 100 * scored.metric, "mIoU vs ground truth"


def _recipe_trained(built) -> bool:
    """A recipe naming weights, or an `edgekit compress` output of one (its description names its source)."""
    source = built.report.details.get("source", {})
    path = source.get("recipe")
    if not path:
        return False
    from edgekit.recipes import load_recipe

    recipe = load_recipe(path)
    if source.get("kind") == "compressed":
        try:
            return load_recipe(recipe.model["source"]).checkpoint is not None
        except EdgekitError:  # a timm:, factory or file source: no recipe says whether it was trained
            return False
    return recipe.checkpoint is not None


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats on both axes (x: lower is better), by x."""
    def beats(a, b) -> bool:
        y_ok = a[1] >= b[1] if higher_is_better else a[1] <= b[1]
        y_strict = a[1] > b[1] if higher_is_better else a[1] < b[1]
        return a[0] <= b[0] and y_ok and (a[0] < b[0] or y_strict)

    front = [i for i, p in enumerate(points) if not any(beats(q, p) for j, q in enumerate(points) if j != i)]
    return sorted(front, key=lambda i: points[i][0])


def plot_sweep(report: SweepReport, path: Path) -> Path:
    """Latency (x) against accuracy for trained rows, and against size for every row (a second
    panel when some rows are trained and some not); the Pareto front marked in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in report.rows if r.accuracy is not None]
    panels = ([(trained, True)] if trained else []) + ([(list(report.rows), False)] if len(trained) < len(report.rows) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5.5), dpi=110, squeeze=False)
    for ax, (rows, by_accuracy) in zip(axes[0], panels):
        _sweep_panel(ax, rows, by_accuracy)
    fig.suptitle(f"edgekit sweep on {report.target} ({report.device}), batch 1")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _sweep_panel(ax, rows: list[SweepRow], by_accuracy: bool) -> None:
    import matplotlib.ticker

    points = [(r.p50_ms, r.accuracy if by_accuracy else r.size_mb) for r in rows]
    front = pareto_front(points, higher_is_better=by_accuracy)
    for i, (r, (x, y)) in enumerate(zip(rows, points)):
        ax.scatter(x, y, s=60 if i in front else 30, color="tab:red" if i in front else "tab:blue", zorder=3)
        ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:red", label="Pareto front")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    xs = [x for x, _ in points]
    narrow = max(xs) < 10 * min(xs)  # within a decade there may be no major tick: label the minor ones
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter() if narrow else matplotlib.ticker.NullFormatter())
    ax.margins(x=0.3, y=0.12)
    ax.set_xlabel("latency p50 per image (ms, log scale)")
    metrics = " / ".join(sorted({r.metric.split(" vs ")[0] for r in rows}))
    ax.set_ylabel(f"{metrics} (points)" if by_accuracy else "model size (MB)")
    ax.set_title("trained recipes: latency vs accuracy" if by_accuracy else "every recipe: latency vs size (lower left wins)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
