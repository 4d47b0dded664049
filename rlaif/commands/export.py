"""`rlaif export CHECKPOINT --out DIR [--no-merge]`: a saved policy as a standard HF model folder.

CHECKPOINT is a run folder (its latest checkpoint), a `checkpoints/step-N` folder or its
`policy/` folder. DIR receives what `final/` holds at the end of a run (see rlaif.export):
safetensors weights with LoRA merged (or, with --no-merge, the PEFT adapter), the tokenizer
with its chat template, the run's generation config, and a model card when the checkpoint
belongs to a run folder.

DIR may be new, empty, or an earlier export (it holds rlaif_export.json); a folder of other
files is replaced only with --force, a file never. The checkpoint's files.json must verify;
weights holding NaN or inf are refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a checkpoint as a Hugging Face model folder (LoRA merged; tokenizer, generation config, card)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif export`."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a run folder (its latest checkpoint), checkpoints/step-N, or its policy/ folder")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the model folder to write: new, empty, or an earlier export (replaced "
                        "atomically); a folder holding other files needs --force")
    parser.add_argument("--force", action="store_true",
                        help="replace --out even though it holds files that are not an earlier export")
    parser.add_argument("--no-merge", action="store_true",
                        help="keep LoRA as a PEFT adapter folder instead of merging it into the base weights")


def run(args: argparse.Namespace) -> int:
    """Export, then print where the folder and its card are."""
    from rlaif.export import (
        check_export_target,
        checkpoint_step,
        export_checkpoint,
        find_run_dir,
    )
    from rlaif.model_card import build_card, card_record_from_run
    from rlaif.runs.folder import CARD_FILE

    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist; pass a run folder or a "
                                "checkpoints/step-N folder")
    out = Path(args.out)
    if out.resolve() == checkpoint.resolve() or checkpoint.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--out {out} would replace the checkpoint it exports; choose another folder")
    check_export_target(out, force=args.force)  # before the card reads anything
    run_dir = find_run_dir(checkpoint)
    card = None
    if run_dir is not None:
        record = card_record_from_run(run_dir, step=checkpoint_step(checkpoint))
        record["merged"] = not args.no_merge or not record.get("lora")
        card = build_card(record)
    folder = export_checkpoint(checkpoint, out, merge_lora=not args.no_merge, card=card,
                               force=args.force)
    adapter = (folder / "adapter_config.json").is_file()  # --no-merge of a full model: no adapter
    print(f"exported {checkpoint} -> {folder}" + (" (PEFT adapter)" if adapter else ""))
    print(f"model card: {folder / CARD_FILE}" if card else
          "no model card: the checkpoint is not inside a run folder with config.yaml")
    return 0
