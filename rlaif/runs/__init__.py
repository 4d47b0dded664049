"""A run, start to end, for every training method (PPO, DPO).

    folder.py     the run folder: every file name, the rule for an existing folder, checkpoints
    manifest.py   files.json: size and sha256 of a folder's files, checked before trusting it
    changes.py    what a --resume changed against the run's first config
    method.py     the small interface a training method offers the lifecycle
    holdout.py    the run's hold-out set (prompts, evaluator, control prompts) from its config
    lifecycle.py  data -> before -> method -> after -> report -> final/ + card
    finish.py     report files, final/ and the card, the trackers, the total time
"""
