"""Peer worker (b): TRL's maintained `GRPOTrainer` (this environment's TRL, 1.16), driven step
by step by `peers.py` over `_protocol`.

Same model folder and LoRA (r 16 on q_proj + v_proj, `peft_config`); `num_generations`
completions for each of batch / num_generations prompts, so a step generates as many samples
as the PPO sides; `min_new_tokens` = `max_completion_length` through `generation_kwargs`.
The reward is rlaif's judge through `rlaif.integrations.trl.reward_function`: the shared
seeded reward model (a classifier judge), or a named judge (`--judge profanity-check`).
GRPO's own defaults otherwise (beta 0.0: no reference pass; one optimizer step per
generation batch, its micro-batches accumulated). Prompts are the chat-rendered texts.

Timing: the trainer's `_generate` (generate) and `_calculate_rewards` (reward) are wrapped
with timers; the rest of the step is "update" (logprob forwards, loss, backward, optimizer).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _protocol import (
    StepClock,
    emit,
    next_command,
    peak_rss_mb,
    rss_mb,
    setup_threads,
    worker_parser,
)


def main() -> None:
    """Build TRL's GRPOTrainer and run steps on command."""
    p = worker_parser("peer worker (b): TRL GRPOTrainer")
    p.add_argument("--judge")
    p.add_argument("--min-new-tokens", type=int, default=32)
    p.add_argument("--generations", type=int, default=4)
    args = p.parse_args()
    setup_threads(args.threads)

    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlaif.integrations.trl import reward_function
    from rlaif.judges.registry import build_judge

    baseline = rss_mb()
    judge = build_judge(args.judge) if args.judge else build_judge(
        {"type": "classifier", "name": "seeded-reward", "model": args.reward, "label": None,
         "output": "logit", "input": "prompt_response", "device": args.device,
         "batch_size": args.batch})
    tokenizer = AutoTokenizer.from_pretrained(args.policy, padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(args.policy)
    prompts = json.loads(Path(args.prompts).read_text())
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="peers-grpo-"), report_to="none",
        per_device_train_batch_size=args.mini_batch,
        gradient_accumulation_steps=args.batch // args.mini_batch,
        num_generations=args.generations, max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.min_new_tokens}, temperature=args.temperature,
        top_k=0, top_p=1.0, learning_rate=args.lr, max_steps=100_000, save_strategy="no",
        logging_steps=1, disable_tqdm=True, gradient_checkpointing=False,
        use_cpu=args.device == "cpu", bf16=args.dtype == "bfloat16", seed=0)
    trainer = GRPOTrainer(
        model=policy, reward_funcs=[reward_function(judge)], args=config, processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                               target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    clock = StepClock()
    seen: dict[str, list] = {"rewards": [], "tokens": []}
    plain_rewards, plain_generate = trainer._calculate_rewards, trainer._generate
    timed_rewards = clock.timed("reward", plain_rewards)
    timed_generate = clock.timed("generate", plain_generate)

    def rewards(*a, **k):
        out = timed_rewards(*a, **k)
        seen["rewards"].extend(float(v) for v in out[:, 0].tolist())
        return out

    def generate(prompts_, *a, **k):
        out = timed_generate(prompts_, *a, **k)
        completion_ids = out[1]  # (prompt_ids, completion_ids, ...): lists of token id lists
        seen["tokens"].append(sum(len(c) for c in completion_ids))
        return out

    trainer._calculate_rewards, trainer._generate = rewards, generate

    class Driver(TrainerCallback):
        def on_step_end(self, *_: object, **__: object) -> None:
            finite = [r for r in seen["rewards"] if math.isfinite(r)]
            emit(clock.record(args.batch, sum(seen["tokens"]),
                              reward_mean=sum(finite) / len(finite) if finite else None))
            seen["rewards"], seen["tokens"] = [], []
            if next_command() == "stop":
                emit({"final": True, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline})
                sys.stdout.flush()
                os._exit(0)
            clock.restart()

    trainer.add_callback(Driver())
    emit({"ready": True, "baseline_rss_mb": baseline, "rss_mb": rss_mb(),
          "versions": {"trl": trl.__version__, "torch": torch.__version__}})
    if next_command() == "stop":
        emit({"final": True, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline})
        return
    clock.restart()
    trainer.train()
    raise RuntimeError("GRPO's train() ended before the benchmark stopped it")


if __name__ == "__main__":
    main()
