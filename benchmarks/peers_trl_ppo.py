"""Peer worker (a): TRL 1.12.0's `trl.experimental.ppo.PPOTrainer`, run in its own environment
(`peers_env.py`), driven step by step by `peers.py` over `_protocol`.

Set up as TRL's own PPO example does: the policy with a LoRA `peft_config` (so the reference
is the policy with its adapters disabled), a value model that is a full sequence classifier
(`num_labels=1`) initialised from the reward model (TRL trains it whole), the reward model an
`nn.Module` sequence classifier. The prompts come already rendered through the chat template
and are tokenised here without special tokens, left-padded. `stop_token` unset: every response
is exactly `response_length` tokens. The pad token is `<|endoftext|>`, not SmolLM2's
`<|im_end|>`: TRL masks every pad-id token of a query, and `<|im_end|>` occurs in the chat
template.

Timing: `batch_generation` (generate) and the reward model's `get_reward` (reward) are
wrapped with timers in TRL's module; the rest of the step (policy, reference and value
forwards, the update) is "update".
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
    """Build TRL's PPOTrainer and run steps on command."""
    p = worker_parser("peer worker (a): TRL 1.12 PPOTrainer", reward_required=True)
    args = p.parse_args()
    setup_threads(args.threads)

    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    baseline = rss_mb()
    tokenizer = AutoTokenizer.from_pretrained(args.policy, padding_side="left")
    tokenizer.pad_token = "<|endoftext|>"
    dtype = torch.bfloat16 if args.dtype == "bfloat16" and args.device == "cpu" else torch.float32
    policy = AutoModelForCausalLM.from_pretrained(args.policy, dtype=dtype)
    value_model = AutoModelForSequenceClassification.from_pretrained(args.reward, num_labels=1, dtype=dtype)
    reward_model = AutoModelForSequenceClassification.from_pretrained(args.reward, num_labels=1, dtype=dtype)
    for model in (policy, value_model, reward_model):
        model.config.pad_token_id = tokenizer.pad_token_id
    prompts = json.loads(Path(args.prompts).read_text())
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
    dataset = Dataset.from_dict({"input_ids": ids})
    grad_accum = args.batch // args.mini_batch
    config = PPOConfig(
        output_dir=tempfile.mkdtemp(prefix="peers-trl-ppo-"), report_to="none",
        per_device_train_batch_size=args.mini_batch, gradient_accumulation_steps=grad_accum,
        num_mini_batches=grad_accum, num_ppo_epochs=1, local_rollout_forward_batch_size=args.batch,
        response_length=args.new_tokens, stop_token=None, temperature=args.temperature,
        learning_rate=args.lr, kl_coef=0.05, total_episodes=args.batch * 100_000,
        num_sample_generations=0, save_strategy="no", logging_steps=1, disable_tqdm=True,
        gradient_checkpointing=False,  # TRL's PPOConfig default is True; equal work: off everywhere
        use_cpu=args.device == "cpu", bf16=args.dtype == "bfloat16" and args.device != "cpu",
        seed=0)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=None,
                         reward_model=reward_model, train_dataset=dataset, value_model=value_model,
                         eval_dataset=dataset, peft_config=peft_config)
    clock = StepClock()
    trl_ppo.batch_generation = clock.timed("generate", trl_ppo.batch_generation)
    plain_get_reward = trl_ppo.get_reward
    timed_get_reward = clock.timed("reward", plain_get_reward)
    trl_ppo.get_reward = lambda model, *a, **k: (timed_get_reward if model is reward_model
                                                 else plain_get_reward)(model, *a, **k)
    lengths: list[int] = []
    plain_generation = trl_ppo.batch_generation

    def counting_generation(model, queries, *a, **k):
        out = plain_generation(model, queries, *a, **k)
        lengths.append(out[0].shape[1] - queries.shape[1])
        return out

    trl_ppo.batch_generation = counting_generation

    class Driver(TrainerCallback):
        def on_step_end(self, *_: object, **__: object) -> None:
            new = lengths.pop()
            emit(clock.record(args.batch, args.batch * new, response_tokens=new))
            command = next_command()
            if command == "stop":
                emit({"final": True, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline})
                sys.stdout.flush()
                os._exit(0)
            clock.restart()

    trainer.add_callback(Driver())
    versions = {m.__name__: m.__version__ for m in (trl, torch)}
    emit({"ready": True, "versions": versions, "baseline_rss_mb": baseline, "rss_mb": rss_mb()})
    if next_command() == "stop":
        emit({"final": True, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline})
        return
    clock.restart()
    started = time.perf_counter()
    trainer.train()
    raise RuntimeError(f"TRL's train() ended after {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
