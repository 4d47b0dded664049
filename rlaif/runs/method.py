"""What a training method offers the run lifecycle (`lifecycle.py`): PPO (`rlaif.ppo.method`)
and DPO (`rlaif.dpo.method`) implement it; the lifecycle does the rest, the same for both.

    data -> before (the method's start model answers the hold-out) -> method.train()
         -> after (the trained model answers; KL to method.reference()) -> report
         -> method.final_model() -> final/ + card
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlaif.runs.folder import RunFolder

if TYPE_CHECKING:
    from rlaif.tracking import Tracker


@dataclass
class MethodOutcome:
    """What training did: its last step, this session's log rows, the newest checkpoint, the KL
    estimator its rows' `objective/kl` used (None: the method logs no KL; the report's training
    KL rows come from it), and what the method adds to report.json."""

    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    kl_estimator: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FinalModel:
    """What goes into `<run>/final/`: the trained model (HF or peft), its tokenizer, whether LoRA
    adapters are merged into the weights, and the run's sampling settings."""

    model: Any
    tokenizer: Any
    merge_lora: bool
    gen_kwargs: dict[str, Any]


class TrainingMethod(Protocol):
    """A training method as the lifecycle drives it (one object per run)."""

    name: str  # "ppo" | "dpo": report.json's `extra.method`, the timing key
    folder: RunFolder
    reward_judge: Any  # the judge the policy was trained to please (for eval.reward_judge_view), or None
    holdout_batch_size: int  # generation batch for the hold-out unless eval.batch_size
    tracker: Tracker  # output.report_to's trackers (`rlaif.tracking`), closed by `close()`
    # What writes the hold-out's replies: None = the model's own `generate`; else a stand-in
    # with its arguments (`rlaif.evaluation.holdout.Holdout.generator`)
    generator: Any

    @property
    def model(self) -> Any:
        """What answers the hold-out prompts: the policy being trained (trained in place)."""

    @property
    def tokenizer(self) -> Any:
        """The policy's tokenizer."""

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder and the report."""

    def reference(self) -> AbstractContextManager[Any]:
        """The start model (for the hold-out KL), e.g. the policy with its LoRA adapters off."""

    def wait(self) -> None:
        """A barrier over every process (a no-op in one process)."""

    def train(self) -> MethodOutcome:
        """Train (from the checkpoint when resuming), writing metrics.jsonl and checkpoints."""

    def final_model(self) -> FinalModel:
        """The trained model for `<run>/final/`."""

    def close(self) -> None:
        """Release what the method built (judges, trackers)."""
