"""`rlaif evaluate`: hold-out toxicity of a model before vs after training, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "generate on held-out HH prompts with two models, score toxicity, write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rlaif evaluate`."""
    parser.add_argument("--before", required=True,
                        help="model before training: hub id, folder or .gguf file")
    parser.add_argument("--after", required=True, help="model after training: hub id, folder, "
                        ".gguf file, checkpoint, PPO run folder, or a run's final/ (merged or adapter)")
    parser.add_argument("--evaluator", default="roberta-hate",
                        help="judge spec (name or YAML path); best a different judge than the reward")
    parser.add_argument("--helpfulness", default=None,
                        help="a judge (name or YAML path) that scores how helpful each reply is, "
                        "its value as it is; default: helpfulness not measured")
    parser.add_argument("--floor", action="append", default=None, dest="floors",
                        help="a text scored as if it were every reply (repeat for several; default: "
                        "the empty reply and \"I'm sorry to hear that.\")")
    parser.add_argument("--toxic-label", default="hate",
                        help="for classifier evaluators: the label whose probability is toxicity")
    parser.add_argument("--n", type=int, default=100, help="number of held-out prompts")
    parser.add_argument("--data", default="sample",
                        help="'sample' (bundled), 'hh' (Anthropic/hh-rlhf), a hub id/folder, or a file")
    parser.add_argument("--data-dir", default=None, help="hub data_dir, e.g. harmless-base")
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument("--task", choices=("dialogue", "summarize", "chat"), default="dialogue",
                        help="chat: the dialogue through the tokenizer's chat template (instruct models)")
    parser.add_argument("--system-prompt", default=None, help="with --task chat: a system message")
    parser.add_argument("--tokenizer", default=None, help="tokenizer (default: the model's own)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--min-new-tokens", type=int, default=None)
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.5, help="toxicity threshold for the share")
    parser.add_argument("--examples", type=int, default=10, help="rows in the qualitative table")
    parser.add_argument("--no-kl", action="store_true",
                        help="skip the hold-out KL(after || before) estimate (needs one shared tokenizer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", choices=("full", "first_turn"), default="full",
                        help="full: the whole dialogue up to the final reply; first_turn: each "
                        "conversation's opening request only (as the demo trains on)")
    parser.add_argument("--out", default="runs/evaluate", help="report folder")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report, print the table and where the report is."""
    from rlaif.data.prompts import load_split_clusters, load_split_prompts
    from rlaif.evaluation.floors import DEFAULT_FLOORS
    from rlaif.evaluation.holdout import evaluate_holdout, run_training_kl
    from rlaif.evaluation.report import summary_table, write_report

    if args.n <= 0:
        raise ValueError(f"--n must be > 0, got {args.n}")
    source = "Anthropic/hh-rlhf" if args.data == "hh" else args.data
    prompts = load_split_prompts(source, split=args.split, task=args.task, n=args.n,
                                 data_dir=args.data_dir, context=args.context)
    # one cluster (template / conversation) per prompt: the intervals resample clusters
    clusters = load_split_clusters(source, split=args.split, n=args.n, data_dir=args.data_dir,
                                   context=args.context)
    gen_kwargs: dict[str, Any] = {"max_new_tokens": args.max_new_tokens}
    if args.min_new_tokens is not None:
        gen_kwargs["min_new_tokens"] = args.min_new_tokens
    if args.greedy:
        gen_kwargs.update(do_sample=False, top_k=None, top_p=None)
    after = Path(args.after)
    # RUN/final (written at the end of a run): its training KL is the run's.
    metrics_path, kl = run_training_kl(after.parent if after.name == "final" else after)
    report = evaluate_holdout(
        args.before, args.after, args.tokenizer, prompts, args.evaluator, kl=kl,
        compute_kl=not args.no_kl, gen_kwargs=gen_kwargs, seed=args.seed,
        threshold=args.threshold, n_examples=args.examples, batch_size=args.batch_size,
        toxic_label=args.toxic_label, chat=args.task == "chat", system_prompt=args.system_prompt,
        helpfulness=args.helpfulness, clusters=clusters,
        floors=DEFAULT_FLOORS if args.floors is None else args.floors,
    )
    extra = {"data": args.data, "split": args.split, "task": args.task}
    paths = write_report(args.out, report, metrics_path=metrics_path, extra=extra)
    data = report.to_dict()
    print(f"\nHold-out toxicity, {len(prompts)} prompts ({data['meta']['toxicity']}):\n")
    print(summary_table(data))
    print(f"\nreport: {paths['md']}\n        {paths['json']}")
    print("plots:  " + ", ".join(str(v) for k, v in paths.items() if k.endswith("plot")))
    return 0
