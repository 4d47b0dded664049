"""Write notebooks/rlaif_detoxify.ipynb (the SageMaker-style walk-through) from the cells below.

    .venv/bin/python notebooks/make_notebook.py

The notebook holds no logic of its own: every cell calls the rlaif library. Edit the cells
here, regenerate, and commit both files (tests/test_notebook.py checks they agree).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("rlaif_detoxify.ipynb")

CELLS: list[tuple[str, str]] = [
    ("md", """\
# Detoxify a language model with RLAIF

A walk-through of [rlaif](../README.md): PPO fine-tunes **Flan-T5** on Anthropic's HH
dialogues so its replies become less toxic, with rewards from an off-the-shelf judge
(Meta's RoBERTa hate-speech classifier), while **Claude through Amazon Bedrock** and an
**HHH ensemble** show how AI judges plug in. At the end, the policy is evaluated on
held-out prompts before vs after training, by a *different* judge than the reward.

**Where to run it.** The full run expects a SageMaker notebook instance or Studio space of
type **`ml.g5.2xlarge`** (1 x NVIDIA A10G, 24 GB), the IAM role allowed to call
`bedrock:InvokeModel` on the Claude model in `judges/claude-toxicity-bedrock.yaml`, and
access to the Hugging Face hub. **`SMOKE = True`** (the default) runs every cell offline
on a laptop CPU in a couple of minutes, with tiny locally built models and a local fake
Claude server; the test suite executes it that way."""),
    ("md", "## 1. Install"),
    ("code", """\
# From a clone of the repository (the notebook lives in notebooks/):
# %pip install -e ..
# or from a built wheel:  %pip install rlaif
# On SageMaker, restart the kernel after installing."""),
    ("md", """\
## 2. Parameters

`SMOKE = True`: offline, tiny models, fake Claude, a few PPO steps (minutes on a CPU).
`SMOKE = False`: `google/flan-t5-base`, `facebook/roberta-hate-speech-dynabench-r4-target`,
Claude on Bedrock, HH `harmless-base` from the hub, on an `ml.g5.2xlarge`."""),
    ("code", """\
SMOKE = True
import os
WORK_DIR = os.environ.get("RLAIF_NOTEBOOK_WORK", "runs/notebook")  # outputs go here
CONFIG = "../configs/flan-t5-hh-roberta.yaml"  # the walk-through's run config
N_EVAL = 16 if SMOKE else 100  # held-out prompts for the before/after evaluation
N_COMPARE = 24 if SMOKE else 200  # chosen/rejected pairs for the judge comparison"""),
    ("code", """\
from rlaif.demo.notebook import INSTANCE_TYPE, notebook_setup

setup = notebook_setup(SMOKE, WORK_DIR)
print(f"mode: {'SMOKE (offline, tiny models, fake Claude)' if SMOKE else 'full run'}")
print(f"expected instance for the full run: {INSTANCE_TYPE}")
print(f"policy: {setup.policy}")
print(f"data: {setup.data} {setup.data_dir or ''}")"""),
    ("md", """\
## 3. Load HH

Anthropic's HH-RLHF holds pairs of transcripts (`chosen`, `rejected`) that share every turn
but the last assistant reply. `load_hh` parses them (a malformed row raises, naming the row);
the prompts are the dialogue up to the final `Assistant:`. SMOKE uses the bundled sample."""),
    ("code", """\
from rlaif.data.hh import load_hh

train = load_hh(setup.data, data_dir=setup.data_dir, split="train")
test = load_hh(setup.data, data_dir=setup.data_dir, split="test")
print(f"{len(train)} train and {len(test)} test examples")
example = test[0]
print(example.prompt[-300:])
print("chosen:  ", example.chosen[:200])
print("rejected:", example.rejected[:200])"""),
    ("md", """\
## 4. Load the policy

`PolicyWithValueHead` wraps a causal or seq2seq model with a value head (optionally LoRA).
The PPO trainer below loads it the same way from the run config."""),
    ("code", """\
from transformers import AutoTokenizer

from rlaif.ppo.policy import PolicyWithValueHead

policy = PolicyWithValueHead.from_pretrained(setup.policy)
tokenizer = AutoTokenizer.from_pretrained(setup.policy)
n_params = sum(p.numel() for p in policy.parameters())
print(f"{setup.policy}: seq2seq={policy.is_seq2seq}, {n_params / 1e6:.2f}M parameters")"""),
    ("md", """\
## 5. The judges

Three judges score the same two replies (higher = better, each on its declared scale):

- **roberta**: the RoBERTa hate-speech classifier, the `nothate` logit (the walk-through's reward);
- **claude**: Claude through Amazon Bedrock with the toxicity rubric (-5 toxic ... +5 clean);
- **hhh**: an ensemble of Claude's helpfulness, honesty and harmlessness (one request per
  sample) plus the classifier on harmlessness.

In SMOKE the classifier is a tiny random one and Claude is the local fake server, whose
scores are computable by hand (see `rlaif/testing/fake_claude.py`)."""),
    ("code", """\
import pandas as pd

from rlaif import Sample, build_judge

texts = ["I like you.", "You are terrible and i hate you."]
judges = {name: build_judge(spec) for name, spec in setup.judges.items()}
judge_scores = {}
for name, judge in judges.items():
    scores = judge.score([Sample(prompt="", response=t) for t in texts])
    judge_scores[name] = [s.value for s in scores]
    print(f"{name:8s} scale {judge.scale.low:g}..{judge.scale.high:g}: "
          + ", ".join(f"{t!r} -> {v:.3f}" for t, v in zip(texts, judge_scores[name])))
pd.DataFrame(judge_scores, index=texts)"""),
    ("md", """\
## 6. Before -> PPO -> after

One call runs the whole walk-through, the same flow as `rlaif train` and `rlaif demo`
(`rlaif.runs.lifecycle`): the start policy answers the held-out TEST prompts and the evaluator
scores them; PPO trains on the TRAIN prompts (batched generation, per-token KL penalty to the
reference, GAE, clipped losses; metrics per step in `metrics.jsonl`, checkpoints in
`checkpoints/`); then the trained policy answers the same prompts with the same seed and
sampling settings. The run config is `configs/flan-t5-hh-roberta.yaml` (lr 1.41e-5, batch 16,
minibatch 4, 1 PPO epoch); SMOKE shrinks it to a few tiny steps.

The evaluator is a different judge than the reward (Claude in the full run), so a policy
that games the reward does not also fool the measurement. Toxicity is in [0, 1]: P(hate) for
a classifier, `(high - score) / (high - low)` for any other judge."""),
    ("code", """\
import json

from rlaif.config import load_config
from rlaif.runs.lifecycle import train_ppo

config = load_config(CONFIG, overrides=[
    *setup.ppo_overrides, "eval.enabled=true", "eval.split=test", f"eval.n={N_EVAL}",
    f"eval.evaluator={json.dumps(setup.evaluator)}"])
run = train_ppo(config, progress=False)
result = run.train
pd.DataFrame(result.history)[["step", "reward/mean", "objective/kl", "objective/entropy", "time/step"]]"""),
    ("md", "## 7. Before / after on the hold-out set"),
    ("code", """\
from IPython.display import Markdown, display

from rlaif.evaluation.report import examples_table, summary_table

report, paths = run.holdout.to_dict(), run.paths
display(Markdown(summary_table(report)))
print("report:", paths["md"])"""),
    ("md", "## 8. Qualitative table"),
    ("code", "display(Markdown(examples_table(report)))"),
    ("md", """\
## 9. Judge comparison

How well does each judge agree with the human preference in HH (chosen better than
rejected), and with each other? Preference accuracy counts ties apart; the Spearman matrix
compares the judges' rankings."""),
    ("code", """\
from rlaif.workbench.judge_comparison import compare_judges

comparison = compare_judges(judges, test.examples[:N_COMPARE])
display(Markdown(comparison.table()))
display(Markdown(comparison.matrix_table()))"""),
    ("code", """\
for judge in judges.values():
    judge.close()
setup.close()"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook object from CELLS."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(CELLS):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"
        if kind == "code" and source.startswith("SMOKE = "):
            cell.metadata["tags"] = ["parameters"]  # papermill-style parameters cell
        nb.cells.append(cell)
    return nb


def main() -> int:
    """Write the notebook next to this script."""
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
