"""`rlaif dpo`: TRL's DPOTrainer on labelled pairs, the run folder, the hold-out flow, errors."""

from __future__ import annotations

import json

import pytest
import yaml
from ppo_helpers import one_thread  # noqa: F401  (fixture)

from rlaif.cli import main
from rlaif.data.hh import load_hh

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A tiny Llama with a ChatML chat template (causal, as DPO needs)."""
    from rlaif.models.tiny import LlamaSettings, build_llama, save_model
    from rlaif.testing.tiny import DEFAULT_CORPUS

    settings = LlamaSettings(vocab_size=320, context_length=256, hidden_size=32, intermediate_size=64,
                             num_layers=2, num_heads=4, num_kv_heads=2, seed=0)
    return save_model(tmp_path_factory.mktemp("llama") / "llama", *build_llama(DEFAULT_CORPUS * 4, settings))


def _labels(path, n=8, tie=True):
    """A label file as `rlaif label` writes it: n decided HH pairs (+ one tie)."""
    rows = [{"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected, "verdict": "a", "strength": 0.9,
             "key": str(i)} for i, e in enumerate(load_hh("sample", split="train", limit=n).examples)]
    if tie:
        rows.append({"prompt": rows[0]["prompt"], "chosen": None, "rejected": None, "verdict": "tie",
                     "strength": 0.0, "key": "tie"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _config(tmp_path, model, evaluator, **over):
    data = {
        "model": {"name_or_path": str(model), "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "preferences": {"path": str(tmp_path / "labels.jsonl")},
        "data": {"source": "sample", "task": "chat", "max_prompt_tokens": 64},
        "dpo": {"learning_rate": 2e-2, "max_steps": 6, "per_device_train_batch_size": 4, "max_length": 160},
        "generation": {"max_new_tokens": 6, "min_new_tokens": 6},
        "eval": {"enabled": True, "evaluator": {"type": "classifier", "model": str(evaluator), "label": "hate"},
                 "split": "test", "n": 3},
        "output": {"dir": str(tmp_path / "run")},
    }
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _margins(model, tokenizer, rows):
    """Mean over pairs of log p(chosen) - log p(rejected), replies after the chat-rendered prompt."""
    import torch

    from rlaif.data.chat import render_chat

    out = []
    for row in rows:
        prompt = render_chat(tokenizer, row["prompt"])
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        lps = []
        for reply in (row["chosen"], row["rejected"]):
            ids = tokenizer(prompt + reply + tokenizer.eos_token, add_special_tokens=False,
                            return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)  # (T-1, V)
            token_lp = logp.gather(1, ids[0, 1:, None])[:, 0]  # (T-1,)
            lps.append(token_lp[n_prompt - 1:].sum().item())
        out.append(lps[0] - lps[1])
    return sum(out) / len(out)


def test_dpo_trains_on_labels_and_writes_the_run_folder(tmp_path, tiny_llama, tiny_models, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlaif.evaluation.holdout import Holdout

    rows = _labels(tmp_path / "labels.jsonl")
    config = _config(tmp_path, tiny_llama, tiny_models["roberta"])
    assert main(["dpo", str(config)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "8 preference pairs from" in printed and "1 ties or unscored left out" in printed
    # The terminal shows what `rlaif train` shows: a line per output.log_every steps (1 here) and
    # a tqdm bar, never transformers' raw log dicts.
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == [f"step {i}" for i in range(1, 7)]
    assert all(" loss " in line and " margin " in line and "s/step)" in line for line in lines)
    assert "{'loss'" not in printed + captured.err and "DPO: 100%" in captured.err
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "report.md", "report.json", "eval_before.json",
                 "final/config.json", "final/model.safetensors", "final/README.md"):
        assert (run / name).is_file(), name
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all("loss" in m and "rewards/margins" in m for m in metrics)

    # DPO moved the policy toward the chosen replies: the margin grew on the training pairs.
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    start = AutoModelForCausalLM.from_pretrained(tiny_llama)
    final = AutoModelForCausalLM.from_pretrained(run / "final")  # LoRA merged: plain transformers
    before_margin, after_margin = _margins(start, tok, rows[:8]), _margins(final, tok, rows[:8])
    assert after_margin > before_margin + 0.1

    report = json.loads((run / "report.json").read_text())
    assert report["extra"]["method"] == "dpo" and report["extra"]["dpo"]["pairs"] == 8
    assert report["extra"]["dpo"]["left_out"]["ties or unscored"] == 1
    timings = report["extra"]["timings_s"]
    assert set(timings) >= {"before", "dpo", "after", "total"}
    # total: setup to final/ written (report.json is rewritten after final/ with it)
    assert timings["total"] + 0.2 >= timings["before"] + timings["dpo"] + timings["after"]
    assert (run / "final" / "README.md").stat().st_mtime_ns <= (run / "report.json").stat().st_mtime_ns
    kl = report["kl"]["hold-out KL(after || start) at T=1, k3, per reply (sum over tokens)"]
    assert kl > 0
    # The "before" side is the start model through the same Holdout: same prompts, seed, replies.
    cfg = yaml.safe_load(config.read_text())
    with Holdout([r["query"] for r in report["rows"]], cfg["eval"]["evaluator"], seed=0, chat=True,
                 gen_kwargs={"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": True, "top_k": 0,
                             "top_p": 1.0, "temperature": 1.0}, progress=False) as holdout:
        side = holdout.score(str(tiny_llama))
    assert side.responses == [r["response_before"] for r in report["rows"]]
    assert [r["tox_before"] for r in report["rows"]] == pytest.approx(side.toxicity, abs=1e-5)
    assert "Trained with rlaif's DPO trainer" in (run / "final" / "README.md").read_text()


def test_a_seq2seq_model_is_refused_before_training(tmp_path, tiny_models, capsys):
    _labels(tmp_path / "labels.jsonl")
    config = _config(tmp_path, tiny_models["t5"], tiny_models["roberta"])
    assert main(["dpo", str(config)]) == 1
    err = capsys.readouterr().err
    assert "encoder-decoder" in err and "causal LMs only" in err
    assert not (tmp_path / "run").exists()


def test_config_and_data_errors_name_the_key_row_and_fix(tmp_path, tiny_llama, tiny_models, capsys):
    config = _config(tmp_path, tiny_llama, tiny_models["roberta"], dpo={"betaa": 0.1})
    assert main(["dpo", str(config)]) == 1
    assert "unknown config key 'dpo.betaa'" in capsys.readouterr().err

    config = _config(tmp_path, tiny_llama, tiny_models["roberta"])
    assert main(["dpo", str(config)]) == 1  # no labels yet
    assert "does not exist; write one with `rlaif label" in capsys.readouterr().err

    (tmp_path / "labels.jsonl").write_text(json.dumps({"prompt": "\n\nHuman: hi\n\nAssistant:",
                                                       "chosen": "hello"}) + "\n")
    assert main(["dpo", str(config)]) == 1
    assert "labels.jsonl: row 1: missing field 'rejected'" in capsys.readouterr().err

    (tmp_path / "labels.jsonl").write_text(json.dumps({"prompt": "p", "chosen": None, "rejected": None}) + "\n")
    assert main(["dpo", str(config)]) == 1
    assert "no usable pair (0 preference pairs" in capsys.readouterr().err


def test_label_then_dpo_with_the_shipped_baby_config(tmp_path, tiny_models, capsys):
    """`rlaif label` -> `rlaif dpo configs/dpo-tiny.yaml` on GPT-2 (plain dialogue prompts)."""
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "dpo-tiny.yaml"
    labels = tmp_path / "labels.jsonl"
    assert main(["label", "profanity-check", "--data", "sample", "--limit", "24", "--out", str(labels)]) == 0
    decided = sum(json.loads(line)["verdict"] in ("a", "b") for line in labels.read_text().splitlines())
    assert main(["dpo", str(config), f"model.name_or_path={tiny_models['gpt2']}",
                 f"preferences.path={labels}", "eval.n=4", "dpo.max_steps=2", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert f"{decided} preference pairs from {labels}" in printed
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["meta"]["n_prompts"] == 4 and report["extra"]["labels"]["judge_ref"] == "profanity-check"
    assert report["extra"]["labels"]["judge_calls"] == 48  # 24 pairs x 2 replies scored
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    # The card names the judge that labelled the pairs (from the label summary), with its spec.
    card = (tmp_path / "run" / "final" / "README.md").read_text()
    assert "- preference labels: `profanity-check`" in card and "judge_calls: 48" in card
    assert "function: profanity_check:predict_prob" in card
