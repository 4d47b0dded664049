"""Worker for tests/test_ddp.py, one per process:

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py MODEL_DIR OUT_DIR [MODE]

Each process trains with `Accelerator(cpu=True)` (gloo) on its half of every batch, then
writes what it saw to OUT_DIR/worker_<rank>.json for the test to check. MODE "fail": the
judge of process 1 raises on its second batch (step 2), nothing checkpointed per step;
MODE "resume": continue the run in OUT_DIR. Every prompt starts with `PREAMBLE`, so each
process's batches and minibatches run the shared-prefix path under DDP.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from ppo_helpers import PREAMBLE, PROMPTS, make_config

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score, Usage
from rlaif.models import prefix
from rlaif.models.generate import tokenize_queries
from rlaif.ppo.trainer import PPOTrainer


class RankJudge(Judge):
    """Every sample on process r scores r, so a gathered mean shows both processes' samples;
    process 1 cannot score its second sample (it is skipped and counted)."""

    name = "rank"
    scale = Scale(0.0, 1.0)

    def __init__(self, rank: int, fail_on_call: int | None = None) -> None:
        self.rank = rank
        self.fail_on_call = fail_on_call
        self.prompts: list[list[str]] = []

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        self.prompts.append([s.prompt for s in samples])
        if len(self.prompts) == self.fail_on_call:
            raise JudgeError(f"budget spent on process {self.rank}")
        return [Score.failed("process 1 drops its second sample") if self.rank == 1 and i == 1
                else Score(value=float(self.rank)) for i in range(len(samples))]


    def usage(self) -> Usage:
        """Process r bills r + 1 requests and $(r + 1) / 4 per batch: a logged step shows the sum."""
        calls = len(self.prompts)
        return Usage(requests=(self.rank + 1) * calls, cost_usd=0.25 * (self.rank + 1) * calls)


def main(model_dir: str, out_dir: str, mode: str = "full") -> None:
    """Two PPO steps on this process's shard; record metrics, prompts and a weight checksum."""
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    settings = {"full": ["output.save_every=1"], "fail": ["output.save_every=0"],
                "resume": ["output.save_every=0", "resume=true"]}[mode]
    config = make_config(model_dir, out_dir, "ppo.batch_size=4", "ppo.mini_batch_size=2",
                         "ppo.steps=2", *settings)
    judge = RankJudge(acc.process_index, fail_on_call=2 if mode == "fail" and acc.process_index == 1 else None)
    trainer = PPOTrainer.build(config, judge=judge, accelerator=acc, prompts=[PREAMBLE + p for p in PROMPTS] * 2)
    result = trainer.train()
    checksum = sum(float(p.detach().double().sum()) for p in trainer.policy.trainable_parameters())
    first = tokenize_queries(trainer.tokenizer, judge.prompts[0], 64, "cpu")
    record = {"rank": acc.process_index, "world": acc.num_processes,
              "local_batch": trainer.local_batch_size, "prompts": judge.prompts,
              "shared_prefix": prefix.usable(trainer.policy.model, *first),
              "checksum": checksum, "history": result.history}
    Path(out_dir, f"worker_{acc.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:])
