"""The model card: built from a run folder's own files, HF metadata, no secret, nothing unmeasured."""

from __future__ import annotations

import json

import pytest
import yaml

from rlaif.evaluation.comparison import compare_before_after
from rlaif.evaluation.report import summary_table, write_report
from rlaif.model_card import build_card, card_record_from_run, model_source

SECRET = "sk-ant-api03-abcdefghijklmnop"
METRICS = [  # three logged steps, as metrics.jsonl holds them (null = not measured)
    {"step": 1, "reward/mean": 0.25, "objective/kl": 0.0, "reward/unscored": 1, "batch/size": 8, "time/step": 1.5},
    {"step": 2, "reward/mean": 0.5, "objective/kl": 0.02, "reward/unscored": 0, "batch/size": 8, "time/step": 2.0},
    {"step": 3, "reward/mean": 0.75, "objective/kl": None, "reward/unscored": 2, "batch/size": 8, "time/step": 2.5},
]


def _run(tmp_path, *, trainer="ppo", report=True, base="HuggingFaceTB/SmolLM2-135M-Instruct",
         preferences=None, extra=None):
    run = tmp_path / "my-run"
    run.mkdir()
    settings = {"ppo": {"learning_rate": 3e-4, "batch_size": 8, "kl": {"kind": "fixed", "kl_coef": 0.05}},
                "dpo": {"beta": 0.1, "loss_type": "sigmoid", "learning_rate": 5e-6}}[trainer]
    config = {
        "model": {"name_or_path": base, "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj"]}},
        "data": {"source": "sample", "split": "train", "task": "chat", "seed": 0,
                 "system_prompt": f"be kind {SECRET}"},
        "judge": {"ref": {"type": "llm", "name": "tox", "provider": "anthropic", "description": f"key {SECRET}",
                          "prompt": "toxicity"}, "on_unscored": "skip"},
        trainer: settings,
        "eval": {"enabled": report, "evaluator": "roberta-hate"},
        "output": {"dir": str(run), "merge_lora": True},
    }
    if trainer == "dpo":  # a DPO config names its pairs, not a reward judge
        del config["judge"]
        config["preferences"] = preferences or {"path": str(tmp_path / "labels.jsonl")}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in METRICS))
    if report:
        before, after = [0.9, 0.6, 0.8, 0.7], [0.2, 0.4, 0.1, 0.3]
        data = {"rows": [{"query": f"q{i}", "response_before": "b", "tox_before": b,
                          "response_after": "a", "tox_after": a} for i, (b, a) in enumerate(zip(before, after))],
                "stats": compare_before_after(before, after, threshold=0.5, seed=0),
                "meta": {"evaluator": "roberta-hate", "toxicity": "P(hate)", "n_prompts": 4},
                "kl": {"hold-out KL(after || before), k3": 0.125}}
        write_report(run, data, metrics_path=run / "metrics.jsonl", extra=extra)
    return run


def test_card_holds_the_runs_numbers_and_hf_metadata(tmp_path):
    run = _run(tmp_path)
    card = build_card(card_record_from_run(run))
    front = yaml.safe_load(card.split("---\n")[1])
    assert front == {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "library_name": "transformers",
                     "pipeline_tag": "text-generation",
                     "tags": ["rlaif", "ppo", "rlhf", "reinforcement-learning", "lora"]}
    report = json.loads((run / "report.json").read_text())
    assert summary_table(report) in card  # the report's own table, as report.md prints it
    d = report["stats"]["difference"]
    assert f"{d['estimate']:.4g}, 95% interval [{d['ci_low']:.4g}, {d['ci_high']:.4g}]" in card
    assert "hold-out KL(after || before), k3 = 0.125" in card
    assert "3 logged step(s), last step 3, 24 sampled responses, 6.0 s of step time" in card
    assert "step 1 0.25 -> last 0.75; objective/kl at the last step n/a" in card  # null stays n/a
    assert "could not score: 3" in card
    assert "## PPO settings" in card and "| `kl.kl_coef` | `0.05` |" in card
    assert "# my-run" in card and "LoRA r=8 alpha=16 on ['q_proj'], merged" in card
    assert "roberta-hate" in card and "no human rated the replies" in card


def test_card_never_holds_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    card = build_card(card_record_from_run(_run(tmp_path)))
    assert SECRET not in card
    assert "provider: anthropic" in card and "description: key ***" in card  # the spec is shown, not the key


def test_a_dpo_run_gets_a_dpo_card(tmp_path):
    card = build_card(card_record_from_run(_run(tmp_path, trainer="dpo", report=False, base=str(tmp_path))))
    front = yaml.safe_load(card.split("---\n")[1])
    assert "dpo" in front["tags"] and "ppo" not in front["tags"]
    assert "base_model" not in front  # a local folder is not a Hub id
    assert "rlaif's DPO trainer" in card and "## DPO settings" in card and "| `beta` | `0.1` |" in card
    # No report: the card says so and claims no before/after number.
    assert "Not run for this model (eval.enabled was false)" in card and "| mean toxicity |" not in card


LABELS_META = {"judge_ref": "profanity-check", "judge_overrides": [], "judge_calls": 48, "cost_usd": 0.0}


@pytest.mark.parametrize("where", ["config", "report", "meta file"])
def test_a_dpo_card_names_the_judge_that_labelled_the_pairs(tmp_path, where):
    """From preferences.reward_judge, else <labels>.meta.json, else report.json extra.labels."""
    labels = tmp_path / "labels.jsonl"
    prefs = {"path": str(labels), **({"reward_judge": "profanity-check"} if where == "config" else {})}
    if where == "meta file":
        (tmp_path / "labels.jsonl.meta.json").write_text(json.dumps(LABELS_META))
    run = _run(tmp_path, trainer="dpo", preferences=prefs, extra={"labels": LABELS_META} if where == "report" else None)
    card = build_card(card_record_from_run(run))
    judges = card.split("## Judges")[1].split("## Data and task")[0]
    assert "- preference labels: `profanity-check` (labels: labels.jsonl" in judges  # no local path
    assert "type: function" in judges and "spec not available" not in judges  # its spec, read from judges/
    if where != "config":
        assert "judge_calls: 48" in judges  # what labelling cost, as its summary recorded it
    assert "inline spec" not in card and "- reward:" not in card


def test_a_dpo_card_without_any_label_record_says_why(tmp_path):
    card = build_card(card_record_from_run(_run(tmp_path, trainer="dpo", report=False)))
    assert "- preference labels: not recorded (labels: " in card and "inline spec" not in card
    assert "no judge named: preferences.reward_judge is unset and no label summary" in card


def test_card_of_an_earlier_checkpoint_drops_what_was_measured_later(tmp_path):
    record = card_record_from_run(_run(tmp_path), step=2)
    assert record["training"]["steps"] == 2 and record["training"]["reward_last"] == 0.5
    assert record["holdout"] is None
    assert "the run evaluated its last step, not this checkpoint" in build_card(record)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        card_record_from_run(tmp_path)


@pytest.mark.parametrize("ref,source", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "Hugging Face Hub id"),
    ("./models/policy", "local folder"),
    ("/models/smollm2.Q4_1.gguf", "GGUF file"),
    ("gpt2", "unknown"),  # a bare name may be a hub id or a typo: not claimed either way
])
def test_model_source(ref, source):
    assert model_source(ref) == source


def test_card_says_helpfulness_was_not_measured_without_a_judge_even_with_a_control_set(tmp_path):
    control = {"source": "32 prompts", "toxicity_mean": {"before": 0.1, "after": 0.09}, "helpfulness": None}
    card = build_card(card_record_from_run(_run(tmp_path, extra={"control": control})))
    assert "- helpfulness: not measured (no helpfulness judge ran: eval.helpfulness unset)" in card
    assert "Helpfulness was not measured: no helpfulness judge ran (the control set shows" in card
    assert "- fluency: not measured" in card and "- floors: none" in card
    assert "- toxicity: by the evaluator `roberta-hate` (P(hate))" in card


def test_card_names_the_helpfulness_judge_fluency_lm_and_floors(tmp_path):
    run = _run(tmp_path, extra={"control": {"source": "32 prompts", "toxicity_mean": {},
                                            "helpfulness": {"judge": "words"}}})
    data = json.loads((run / "report.json").read_text())
    data["stats"]["helpfulness"] = {"judge": "words", "difference": {
        "estimate": -0.5, "ci_low": -0.75, "ci_high": -0.25}}
    side = {"distinct": {"1": 0.5}, "length": {"median": 3.0}}
    data["metrics"] = {"before": side, "after": side, "floors": []}
    data["meta"].update(fluency={"lm": "HuggingFaceTB/SmolLM2-135M-Instruct"},
                        floors=["empty reply", '"I\'m sorry to hear that."'])
    (run / "report.json").write_text(json.dumps(data))
    card = build_card(card_record_from_run(run))
    assert ("- helpfulness: by the judge `words` on the hold-out and the control prompts, its value as it "
            "is (higher = more helpful); after - before -0.5, 95% interval [-0.75, -0.25]") in card
    assert "- fluency: perplexity of the replies under the start model (HuggingFaceTB/SmolLM2-135M-Instruct)" in card
    assert "- diversity: distinct-1/2/3 over each prompt's replies" in card
    assert "- floors (every metric as if that text were every reply): empty reply, \"I'm sorry to hear that.\"" in card
    assert "not measured" not in card.split("## Limitations")[0].split("What was measured:")[1]
    assert "Helpfulness was scored by one automatic judge (`words`)" in card


def test_a_malformed_report_is_named(tmp_path):
    # #21: a malformed report.json named no file.
    run = _run(tmp_path)
    (run / "report.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match=rf"{run / 'report.json'}: not a valid report .*evaluate the run again"):
        card_record_from_run(run)
