"""Live experiment tracking: every step's metrics, the config and the final report, sent to
the trackers `output.report_to` names, through accelerate's tracker classes.

    tensorboard   event files in <run>/tensorboard          (tensorboard --logdir <run>/tensorboard)
    mlflow        a local file store, file://<run>/mlruns    (unless MLFLOW_TRACKING_URI is set)
    wandb         <run>/wandb; offline when WANDB_MODE=offline (then `wandb sync` later)

Offline-safe: nothing here opens a connection unless the user's own environment tells a
tracker to. Only the main process logs; with `report_to` empty a `Tracker` does nothing.
A tracker whose package is missing is refused when the tracker is made, before training,
naming the extra to install.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlaif.runs.changes import flatten
from rlaif.secrets import redact_mapping, redact_text

logger = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb", "mlflow")
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"
WANDB_DIR = "wandb"
PROJECT = "rlaif"  # the mlflow experiment / wandb project unless the environment names one
# The module each tracker imports, and the pip name of the package that provides it.
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
             "mlflow": ("mlflow", "mlflow-skinny")}


class TrackerMissing(ValueError):
    """A tracker named in `output.report_to` whose package is not installed."""


def check_installed(name: str) -> None:
    """Refuse a tracker that cannot run here, naming the package and the extra to install."""
    import importlib.util

    if name not in _PACKAGES:
        raise ValueError(f"output.report_to: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
    module, package = _PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        raise TrackerMissing(
            f"output.report_to names {name!r} but the {package} package is not installed; install "
            f"it with `pip install rlaif[tracking]` (or `pip install {package}`), or remove "
            f"{name!r} from output.report_to")


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row, `step` left out (it is the x axis); like
    metrics.jsonl, a non-finite value is no measurement and is not sent."""
    return {k: float(v) for k, v in metrics.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def metric_name(key: str) -> str:
    """`key` with the characters trackers refuse in a metric name (mlflow: all but letters,
    digits, _ - . : / and space) replaced by '_': "KL(after || before), k1" -> "KL_after_before_k1"."""
    return re.sub(r"[^\w\-.:/ ]+", "_", key).replace(" _", "_").replace("_ ", "_").strip("_ ")


def flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as flat `a.b: value` hyper-parameters (secrets redacted by name and by value:
    `rlaif.secrets.redact_mapping`; lists and None as text)."""
    flat = flatten(redact_mapping(dict(config)))
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


class Tracker:
    """accelerate trackers for one run: `log`, `log_config`, `log_report`, `log_images`, `finish`.

    `report_to` empty (or `enabled=False`, as on every process but the main one) makes every
    method a no-op. `where()` says where each tracker writes, for the progress and summary lines.
    """

    def __init__(self, report_to: Sequence[str], run_dir: str | Path, *, enabled: bool = True,
                 run_name: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.names = list(dict.fromkeys(report_to)) if enabled else []
        for name in self.names:
            check_installed(name)
        self.run_name = run_name or self.run_dir.resolve().name
        self.trackers: list[Any] = [self._start(name) for name in self.names]

    @property
    def active(self) -> bool:
        """True when at least one tracker receives what is logged."""
        return bool(self.trackers)

    def _start(self, name: str) -> Any:
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

        if name == "tensorboard":
            tracker = TensorBoardTracker(TENSORBOARD_DIR, self.run_dir)
        elif name == "mlflow":
            import mlflow

            if not os.environ.get("MLFLOW_TRACKING_URI"):
                # The local file store: offline, nothing to run. MLflow 3.x keeps it in
                # maintenance mode and refuses it unless this is set (a database backend
                # needs more packages; set MLFLOW_TRACKING_URI to use one).
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                mlflow.set_tracking_uri(self.mlflow_uri())
            tracker = MLflowTracker(experiment_name=PROJECT, run_name=self.run_name)
        else:
            (self.run_dir / WANDB_DIR).mkdir(parents=True, exist_ok=True)
            # wandb reads WANDB_MODE (offline / disabled) and WANDB_PROJECT itself.
            tracker = WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=self.run_name,
                                   dir=str(self.run_dir))
        tracker.start()
        return tracker

    def mlflow_uri(self) -> str:
        """The local mlflow file store of this run."""
        return (self.run_dir / MLFLOW_DIR).resolve().as_uri()

    def where(self) -> list[str]:
        """One 'tracker: location' phrase per tracker (a tracking URI's credentials masked)."""
        places = {"tensorboard": f"tensorboard: {self.run_dir / TENSORBOARD_DIR}",
                  "mlflow": f"mlflow: {redact_text(os.environ.get('MLFLOW_TRACKING_URI') or self.mlflow_uri())}",
                  "wandb": f"wandb: {self.run_dir / WANDB_DIR} (mode {os.environ.get('WANDB_MODE', 'online')})"}
        return [places[name] for name in self.names]

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """One step's metrics (its finite numbers) at `step`."""
        values = numeric_metrics(metrics)
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The resolved run config, flattened, secrets redacted."""
        values = flat_config(config)
        for tracker in self.trackers:
            tracker.store_init_configuration(values)

    def log_report(self, table: str, numbers: Mapping[str, Any], step: int,
                   rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """The hold-out result: `table` (markdown) as text, `numbers` (flattened) as scalars
        at `step`, and `rows` (query / responses / toxicities) as a table where the tracker has one."""
        scalars = {metric_name(k): v for k, v in numeric_metrics(flatten(dict(numbers))).items()}
        columns = sorted({k for row in rows for k in row})
        for name, tracker in zip(self.names, self.trackers):
            tracker.log(scalars, step=step)
            if name == "tensorboard":
                tracker.writer.add_text("holdout/table", table, global_step=step)
                tracker.writer.flush()
            elif name == "mlflow":
                import mlflow

                mlflow.log_text(table, "holdout/table.md")
                if rows:
                    mlflow.log_table({c: [r.get(c) for r in rows] for c in columns},
                                     "holdout/examples.json")
            elif rows:
                tracker.log_table("holdout/examples", columns=columns,
                                  data=[[r.get(c) for c in columns] for r in rows], step=step)

    def log_images(self, images: Mapping[str, str | Path], step: int) -> None:
        """PNG files (the report's plots) under their names."""
        if not self.trackers:
            return
        import matplotlib.image

        for name, tracker in zip(self.names, self.trackers):
            for key, path in images.items():
                if name == "mlflow":
                    import mlflow

                    mlflow.log_artifact(str(path), artifact_path="plots")
                    continue
                pixels = matplotlib.image.imread(str(path))[..., :3]  # (H, W, 3) floats in [0, 1]
                if name == "tensorboard":
                    tracker.log_images({key: pixels[None]}, step=step, dataformats="NHWC")
                else:
                    tracker.log_images({key: [pixels]}, step=step)

    def finish(self) -> None:
        """Flush and close every tracker (safe to call twice)."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish()


def make_tracker(config: Any, *, enabled: bool = True) -> Tracker:
    """The run's `Tracker` (`config.output.report_to`, writing under `config.output.dir`), with
    the resolved config logged; a no-op tracker when report_to is empty or `enabled` is False."""
    tracker = Tracker(config.output.report_to, config.output.dir, enabled=enabled)
    if tracker.active:
        tracker.log_config(config.model_dump(mode="json"))
    return tracker
