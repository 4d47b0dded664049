"""`rlaif dpo`: DPO (TRL's maintained `DPOTrainer`) on AI-labelled preference pairs, beside PPO.

    config.py   the run config: rlaif's model/data/generation/eval/output sections + `preferences`, `dpo`
    data.py     a preference file (`rlaif label` JSONL or a `datasets` folder) -> TRL rows (chat prompts)
    train.py    before -> DPO -> after through the same hold-out flow as `rlaif train`; the run folder
"""
