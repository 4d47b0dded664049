"""`rlaif dpo`: DPO (TRL's maintained `DPOTrainer`) on AI-labelled preference pairs, beside PPO.

    config.py     the run config: rlaif's model/data/generation/eval/output sections + `preferences`, `dpo`
    data.py       a preference file (`rlaif label` JSONL or a `datasets` folder) -> TRL rows (chat prompts)
    setup.py      the causal-LM check, LoRA config, TRL's arguments
    callbacks.py  metrics.jsonl, the terminal bar, the run folder's checkpoints and the graceful stop
    method.py     DPO as a method of the run lifecycle (`rlaif.runs.lifecycle.train_dpo`)
"""
