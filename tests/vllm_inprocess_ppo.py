"""Driver for tests/test_vllm_inprocess.py: PPO with the vLLM engine in the trainer's own process
(generation.vllm.engine auto -> inprocess), run by vLLM's environment's Python, which has
vllm next to rlaif's trainer (scripts/setup_vllm.sh adds peft and accelerate there).

    python vllm_inprocess_ppo.py LLAMA_DIR RUN_DIR OUT_JSON
"""

from __future__ import annotations

import json
import sys


def main(llama: str, run_dir: str, out: str) -> None:
    import torch
    from ppo_helpers import PROMPTS, TokenSetJudge, make_config
    from transformers import AutoTokenizer

    from rlaif.ppo.trainer import PPOTrainer
    from rlaif.ppo.vllm_connect import engine_kind

    torch.set_num_threads(1)
    config = make_config(llama, run_dir, "ppo.steps=8", "ppo.batch_size=16", "ppo.mini_batch_size=8",
                         "ppo.learning_rate=3e-3", "ppo.ppo_epochs=4", "ppo.kl.kl_coef=0.01",
                         model={"lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
                         generation={"backend": "vllm", "min_new_tokens": 8, "max_new_tokens": 8,
                                     "vllm": {"kv_cache_gb": 1}})
    trainer = PPOTrainer.build(config, judge=TokenSetJudge(AutoTokenizer.from_pretrained(llama)),
                               prompts=PROMPTS * 4)
    kind = engine_kind(config)
    result = trainer.train()
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"engine": kind, "history": result.history, "closed": trainer.rollouts.engine is None}, f)


if __name__ == "__main__":  # vLLM spawns its engine process, which imports this file again
    main(*sys.argv[1:4])
