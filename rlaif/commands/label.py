"""`rlaif label JUDGE --data SRC --out FILE`: preference pairs labelled by any judge.

Pairs come from (a) the HH chosen/rejected rows of SRC (the human label is kept, and the
judge's agreement with it is printed, overall and by the position the human-chosen reply was
shown in), or (b) with `--policy MODEL`, two samples per prompt of SRC from that policy
(chat template unless `--no-chat`; `--engine vllm` samples them on vLLM). JUDGE is any judge: a `type: pairwise` Claude judge, or
any pointwise judge compared on its two scores. The output JSONL is TRL's preference format
(`prompt`, `chosen`, `rejected`) plus verdict, strength, rationale and cost per row; ties and
unscored pairs are kept with chosen/rejected null and left out of `--dataset` and `rlaif dpo`.
Every labelled pair goes to `<out>.partial` as the judge answers; after a stop, `--resume`
continues (labelled pairs are skipped). A finished file of the same judge is extended by a rerun;
a label file belongs to one judge (see rlaif.workbench.label_file). Pairs are numbered from 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rlaif.commands.score import add_resume_arguments

HELP = "label preference pairs (HH pairs or two policy samples per prompt) with any judge"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif label`."""
    parser.add_argument("judge", metavar="JUDGE",
                        help="built-in judge name (see `rlaif judges`), a judge spec YAML path; "
                        "pointwise judges are compared on their two scores")
    parser.add_argument("--data", default="sample", metavar="SRC",
                        help="HH source: 'sample', 'redteam', a .jsonl(.gz)/.parquet file or a hub "
                        "id (default: sample)")
    parser.add_argument("--split", default="train", help="split of SRC (default: train)")
    parser.add_argument("--data-dir", metavar="NAME", help="HH subset, e.g. harmless-base")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="first N rows / prompts only (messages number pairs from 1, in this order)")
    parser.add_argument("--out", metavar="FILE",
                        help="output JSONL (default: <SRC>.<split>.labels.jsonl here)")
    parser.add_argument("--dataset", metavar="DIR",
                        help="also save the decided pairs as a `datasets` folder (save_to_disk)")
    parser.add_argument("--cache", metavar="PATH",
                        help="sqlite score cache: nothing already paid for is asked again")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a judge spec field (repeatable); tie_margin=X sets the "
                        "score gap under which a pointwise judge calls a tie")
    parser.add_argument("--chunk", type=int, default=32,
                        help="pairs per judge call (default 32; an API judge is asked at most its "
                        "max_concurrency requests at a time)")
    add_resume_arguments(parser, "labelled pairs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    policy = parser.add_argument_group("pairs from a policy (source b)")
    policy.add_argument("--policy", metavar="MODEL",
                        help="hub id, folder, .gguf or run folder: sample two replies per prompt")
    policy.add_argument("--no-chat", action="store_true",
                        help="prompt the policy with the plain dialogue, not its chat template")
    policy.add_argument("--system-prompt", help="chat: a system message before the dialogue")
    policy.add_argument("--max-new-tokens", type=int, default=32)
    policy.add_argument("--temperature", type=float, default=1.0)
    policy.add_argument("--top-k", type=int, default=0)
    policy.add_argument("--top-p", type=float, default=1.0)
    policy.add_argument("--seed", type=int, default=0, help="samples use seeds SEED and SEED+1")
    policy.add_argument("--batch-size", type=int, default=16)
    policy.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                        help="what samples: hf = transformers' generate; vllm = a vLLM engine "
                        "started for MODEL (in this process when vllm is importable, else a "
                        "server from .venv-vllm: bash scripts/setup_vllm.sh; docs/VLLM.md)")


def _items(args: argparse.Namespace) -> list:
    from rlaif.workbench.pairs import hh_items, policy_items

    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit {args.limit}: must be a positive number of rows")
    if args.policy is None:
        return hh_items(args.data, split=args.split, data_dir=args.data_dir, limit=args.limit)
    from rlaif.data.prompts import load_split_prompts

    prompts = load_split_prompts(args.data, split=args.split, n=args.limit, data_dir=args.data_dir)
    gen = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": 1, "do_sample": True,
           "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    print(f"sampling 2 replies to each of {len(prompts)} prompts from {args.policy}", flush=True)
    return policy_items(args.policy, None, prompts, gen_kwargs=gen, seed=args.seed,
                        batch_size=args.batch_size, chat=not args.no_chat,
                        system_prompt=args.system_prompt, engine=args.engine)


def run(args: argparse.Namespace) -> int:
    """Build the pairs, label them (resuming), write the files, print the summary."""
    from tqdm.auto import tqdm

    from rlaif.overrides import parse_overrides
    from rlaif.workbench.agreement import summary_lines
    from rlaif.workbench.job import WorkbenchStopped
    from rlaif.workbench.journal import existing_policy
    from rlaif.workbench.judge_setup import JudgeChoice
    from rlaif.workbench.label_file import label_with, open_label_journal

    name = Path(args.data).stem if Path(args.data).exists() else args.data.replace("/", "_")
    out = Path(args.out) if args.out else Path.cwd() / f"{name}.{args.split}.labels.jsonl"
    choice = JudgeChoice.resolve(args.judge, parse_overrides(args.overrides), args.cache)
    journal = open_label_journal(out, choice.owner(), existing_policy(args.resume, args.restart))
    t0 = time.perf_counter()
    items = _items(args)
    sampling = time.perf_counter() - t0 if args.policy else 0.0
    meta = {"judge_overrides": args.overrides, "data": args.data,
            "split": args.split, "policy": args.policy, "seconds_sampling": round(sampling, 1)}
    judge_name = choice.spec.name or args.judge
    try:
        with tqdm(total=len(items), desc=f"labelling with {judge_name}", unit="pair",
                  disable=args.no_progress) as bar:
            result = label_with(choice, items, journal, chunk=args.chunk,
                                progress=bar.update, meta=meta)
    except WorkbenchStopped as exc:
        print(f"rlaif label: stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"judge {judge_name} on {args.data} ({len(items)} pairs; {result.labelled_now} labelled now, "
          f"{result.resumed} kept from an earlier run) -> {out}")
    for line in summary_lines(result.summary):
        print(line)
    summary = result.summary
    if summary["decided"] + summary["ties"] == 0:
        first = next((r.get("error") for r in result.rows if r.get("error")), None)
        print(f"rlaif label: no pair was labelled (first reason: {first}); the rows are in {out} "
              "with their errors", file=sys.stderr)
        return 1
    if args.dataset:
        from rlaif.workbench.label_dataset import save_dataset

        n = save_dataset(result.rows, args.dataset)
        print(f"dataset: {n} decided pairs -> {args.dataset}")
    print(f"summary: {result.meta_path}")
    return 0
