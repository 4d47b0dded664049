"""What `rlaif dpo` hangs on TRL's DPOTrainer: every log line into metrics.jsonl (and the
trackers), the terminal output `rlaif train` gives (a tqdm bar with loss and margin, and a
one-line log every `output.log_every` steps) in place of transformers' bar, which prints each
log dict; and the run folder's checkpoints (sealed, renamed to step-N, `latest`) and the
graceful stop.

transformers is imported inside `dpo_callbacks`, so importing this module stays light.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from rlaif.io import append_jsonl
from rlaif.runs.folder import RunFolder
from rlaif.runs.metrics_log import finite_or_none


def metrics_row(step: int, logs: dict[str, Any]) -> dict[str, Any] | None:
    """One metrics.jsonl row of a TRL log dict (numbers only), or None for the end-of-training
    summary (`train_runtime`, ...), which is no step."""
    if not logs or "train_runtime" in logs:
        return None
    return {"step": step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}


def log_line(row: dict[str, Any], seconds_per_step: float | None) -> str:
    """The periodic line, as `rlaif train` prints one: step, loss, reward margin and accuracy."""
    def num(key: str, fmt: str) -> str:
        value = row.get(key)
        return "n/a" if not isinstance(value, (int, float)) or not math.isfinite(value) else format(value, fmt)

    timing = f" ({seconds_per_step:.2f}s/step)" if seconds_per_step is not None else ""
    return (f"step {row['step']}: loss {num('loss', '.4g')} margin {num('rewards/margins', '.4g')} "
            f"accuracy {num('rewards/accuracies', '.2f')}{timing}")


def dpo_callbacks(metrics_path: Path, history: list[dict[str, Any]], *, progress: bool,
                  log_every: int, tracker: Any = None) -> list[Any]:
    """[the metrics.jsonl (and `tracker`) writer, and with `progress` the bar + periodic line]
    for DPOTrainer.

    The caller removes transformers' own printing callbacks (`quiet_callbacks()`)."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class MetricsToJsonl(TrainerCallback):
        """Every TRL log line (not the end-of-training summary) as one metrics.jsonl row."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            row = metrics_row(state.global_step, logs or {})
            if row is not None and state.is_world_process_zero:
                history.append(row)
                append_jsonl(metrics_path, {k: finite_or_none(v) for k, v in row.items()})
                if tracker is not None:
                    tracker.log(row, step=row["step"])

    class Progress(TrainerCallback):
        """A tqdm bar over optimizer steps; loss and margin on it; a line every `log_every` steps."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.last: tuple[int, float] = (0, 0.0)  # (step, time) of the last printed line

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="DPO", unit="step")
                self.last = (state.global_step, time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            row = metrics_row(state.global_step, logs or {})
            if self.bar is None or row is None:
                return
            self.bar.set_postfix(loss=f"{row.get('loss', math.nan):.3g}",
                                 margin=f"{row.get('rewards/margins', math.nan):.3g}")
            if state.global_step % log_every == 0:
                now, (step, then) = time.perf_counter(), self.last
                per_step = (now - then) / (state.global_step - step) if state.global_step > step else None
                self.bar.write(log_line(row, per_step))
                self.last = (state.global_step, now)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return [MetricsToJsonl(), *([Progress()] if progress else [])]


def quiet_callbacks() -> tuple[Any, ...]:
    """transformers' own terminal callbacks, which print every log dict: removed from the trainer."""
    from transformers import PrinterCallback, ProgressCallback

    return (PrinterCallback, ProgressCallback)


def run_folder_callbacks(folder: RunFolder, stop: Any) -> list[Any]:
    """[checkpoint sealing, the graceful stop] for DPOTrainer.

    TRL writes `checkpoints/checkpoint-N`; each is sealed with files.json and renamed to
    `checkpoints/step-N`, and `latest` names it, as PPO's checkpoints are. The last step is always
    saved; so is the step at which `stop` (a `GracefulStop`) heard a signal, and training ends."""
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class RunFolderCheckpoints(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps or stop.requested is not None:
                control.should_save = True
            if stop.requested is not None:
                control.should_training_stop = True
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                written = folder.checkpoints / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
                folder.publish_checkpoint(written, state.global_step)
                # TRL also writes a model card into its output_dir; the run's card is final/README.md
                (folder.checkpoints / "README.md").unlink(missing_ok=True)

    return [RunFolderCheckpoints()]
