"""PPO vs DPO from the same AI judge, offline, on the demo's policy and hold-out set.

    python scripts/ppo_vs_dpo.py [--out runs/ppo-vs-dpo] [--config configs/ppo-vs-dpo.yaml]
                                 [--steps N] [key=value ...  (PPO overrides)]

    1. assets  the demo's cached SmolLM2-135M-Instruct (+ rudeness) and MiniLM evaluator
    2. PPO     configs/demo.yaml + the comparison's overrides: reward = the judge, N steps x
               batch_size TRAIN prompts (judge calls = N x batch_size)
    3. label   the same policy samples two replies to each of the first N x batch_size / 2
               TRAIN prompts of PPO's own prompt stream; the same judge picks one of each pair
               (pointwise judge compared on its two scores: 2 judge calls per pair)
    4. DPO     TRL's DPOTrainer on the decided pairs, the same LoRA settings, chat prompts
    5. compare both hold-out reports, measured by the demo's independent evaluator (not the
               judge) on the same held-out TEST prompts, same seed and generation settings

On a machine shared with other jobs, run it with OMP_NUM_THREADS=1: two-thread torch
processes competing for two cores made generation ~10x slower here (measured Nov 2026).

Budget: the same number of judge calls. Wall-clock is reported for each side (DPO's
includes sampling and labelling). Nothing here is tuned on the TEST prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ppo-vs-dpo", help="folder for both runs and the comparison")
    parser.add_argument("--config", default=str(ROOT / "configs" / "ppo-vs-dpo.yaml"))
    parser.add_argument("--steps", type=int, help="PPO steps (overrides the config's ppo.steps)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more PPO-side overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rlaif.runs.comparison import compare_runs
    from rlaif.data.prompts import PromptStream, load_prompt_split
    from rlaif.demo.assets import build_real_assets
    from rlaif.demo.run import demo_config, keep_evaluator
    from rlaif.dpo.config import load_dpo_config
    from rlaif.runs.lifecycle import train_dpo
    from rlaif.workbench.agreement import summary_lines
    from rlaif.workbench.judge_setup import JudgeChoice
    from rlaif.workbench.label_file import label_with, open_label_journal
    from rlaif.workbench.pairs import policy_items
    from rlaif.models.load import load_tokenizer
    from rlaif.runs.lifecycle import train_ppo

    args = _args(argv)
    spec = yaml.safe_load(Path(args.config).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge_ref = spec["judge"]

    print("[1/5] demo assets (cached after the first build)", flush=True)
    t0 = time.perf_counter()
    assets = build_real_assets()
    print(f"      {assets.policy} ({time.perf_counter() - t0:.0f}s)", flush=True)

    ppo_dir, dpo_dir = out / "ppo", out / "dpo"
    evaluator = keep_evaluator(assets, ppo_dir)
    overrides = [*spec.get("ppo_overrides", []), f"judge.ref={judge_ref}", *args.overrides]
    if args.steps:
        overrides.append(f"ppo.steps={args.steps}")
    ppo_config = demo_config(assets, ppo_dir, overrides=overrides, evaluator=evaluator)
    calls = ppo_config.ppo.steps * ppo_config.ppo.batch_size
    print(f"[2/5] PPO: {ppo_config.ppo.steps} steps x {ppo_config.ppo.batch_size} prompts = {calls} "
          f"judge calls ({judge_ref})", flush=True)
    t0 = time.perf_counter()
    train_ppo(ppo_config, extra={"method": "ppo", "judge_calls": calls})
    ppo_seconds = time.perf_counter() - t0

    n_pairs = calls // 2
    tokenizer = load_tokenizer(str(assets.policy))
    train_prompts = load_prompt_split(ppo_config.data, tokenizer).train
    stream = PromptStream(len(train_prompts), ppo_config.data.seed)  # the order PPO drew them in
    prompts = [train_prompts[i] for i in stream.indices(0, n_pairs)]
    print(f"[3/5] label: 2 replies to each of {n_pairs} TRAIN prompts, judged by {judge_ref} "
          f"({2 * n_pairs} judge calls)", flush=True)
    t0 = time.perf_counter()
    items = policy_items(str(assets.policy), tokenizer, prompts,
                         gen_kwargs=ppo_config.generation.generate_kwargs(), seed=ppo_config.data.seed,
                         batch_size=32, chat=True, system_prompt=ppo_config.data.system_prompt)
    sampling = time.perf_counter() - t0
    labels = out / "labels.jsonl"
    choice = JudgeChoice.resolve(judge_ref)
    result = label_with(choice, items, open_label_journal(labels, choice.owner(), existing="resume"),
                        meta={"seconds_sampling": round(sampling, 1)})
    for line in summary_lines(result.summary):
        print(f"      {line}")

    print("[4/5] DPO on the decided pairs", flush=True)
    base = ppo_config.model_dump(mode="json")
    dpo_dir.mkdir(parents=True, exist_ok=True)
    dpo_config = load_dpo_config(data={
        "model": base["model"], "preferences": {"path": str(labels), "reward_judge": judge_ref},
        "data": base["data"], "dpo": spec["dpo"], "generation": base["generation"],
        "eval": {**base["eval"], "evaluator": keep_evaluator(assets, dpo_dir)},
        "output": {"dir": str(dpo_dir)}})
    train_dpo(dpo_config, extra={"judge_calls": result.summary["judge_calls"]})

    print("[5/5] compare", flush=True)
    cmp = compare_runs([ppo_dir, dpo_dir], out)
    print(cmp["table"])
    for note in cmp["notes"]:
        print(f"note: {note}")
    summary = {"ppo_seconds_wall": round(ppo_seconds, 1), "judge_calls": {"ppo": calls,
               "dpo": result.summary["judge_calls"]}, "label_summary": result.summary}
    (out / "ppo_vs_dpo.json").write_text(json.dumps(summary, indent=2))
    print(f"files: {out}/compare_runs.md, compare_runs.png, ppo_vs_dpo.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
