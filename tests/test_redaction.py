"""Secrets are masked by value and by shape, not only by key name, everywhere a run writes
(config.yaml, the model card, trackers, logs); cards and reports hold no absolute local path."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from rlaif.config import load_config, save_config
from rlaif.local_paths import publishable, publishable_text
from rlaif.secrets import install_log_redaction, redact_mapping, redact_text

PASSWORD = "hunter2-Pa55word"
BEARER = "Bearer eyJhbGciOi.payload.sig123"
# A judge spec as #21 found it: a credential in base_url, another under a name no rule knew.
SPEC = {"type": "llm", "name": "tox", "provider": "anthropic", "prompt": "toxicity",
        "base_url": f"http://proxy-user:{PASSWORD}@judge-proxy.internal:8080/v1?api_key=q-key-123",
        "auth_header": BEARER}


@pytest.mark.parametrize("text, expected", [
    (f"http://user:{PASSWORD}@host/v1", "http://user:***@host/v1"),          # password in a URL
    ("https://ghtoken123456@host/x", "https://***@host/x"),                    # a bare token as user
    ("https://h/v1?api_key=abc123&model=x", "https://h/v1?api_key=***&model=x"),  # secret parameter
    ("https://s3/o?X-Amz-Signature=deadbeef#f", "https://s3/o?X-Amz-Signature=***#f"),
    (f"Authorization: {BEARER}", "Authorization: Bearer ***"),                 # a header by shape
    ("sk-ant-api03-abcdefgh12345 AKIAABCDEFGHIJKLMNOP", "*** ***"),            # key shapes, as before
    ("hf_abcdefghijklmnopqrstuvwxyz123", "***"),                               # a hub token
    # not secrets: left alone
    ("http://localhost:8000/v1 and https://huggingface.co/gpt2", "http://localhost:8000/v1 and https://huggingface.co/gpt2"),
    ("max_tokens 12:30@home reward/mean", "max_tokens 12:30@home reward/mean"),
])
def test_redact_text_masks_credentials_by_shape(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize("var", ["ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"])
def test_a_value_equal_to_a_secret_environment_key_is_masked_anywhere(monkeypatch, var):
    monkeypatch.setenv(var, "plain-looking-value-42")
    data = {"judge": {"ref": {"note": "plain-looking-value-42", "url": "x?k=plain-looking-value-42"}}}
    assert "plain-looking-value-42" not in json.dumps(redact_mapping(data))


def test_redact_mapping_masks_a_secret_keys_value_wherever_it_appears():
    data = {"judge": {"api_key": "s3cret-value-xyz", "extra_headers": {"x-api": "s3cret-value-xyz"},
                      "note": "key s3cret-value-xyz here", "max_tokens": 512, "tokenizer": "gpt2",
                      "auth_header": BEARER}}
    assert redact_mapping(data) == {"judge": {
        "api_key": "<redacted>", "extra_headers": {"x-api": "***"}, "note": "key *** here",
        "max_tokens": 512, "tokenizer": "gpt2", "auth_header": "Bearer ***"}}


def _secret_free(text: str) -> None:
    for secret in (PASSWORD, "q-key-123", "eyJhbGciOi"):
        assert secret not in text


def test_saved_config_masks_secrets_by_value(tmp_path):
    config = load_config(data={"model": {"name_or_path": "gpt2"}, "judge": {"ref": dict(SPEC)}})
    text = save_config(config, tmp_path).read_text()
    _secret_free(text)
    saved = yaml.safe_load(text)["judge"]["ref"]
    assert saved["base_url"] == "http://proxy-user:***@judge-proxy.internal:8080/v1?api_key=***"
    assert saved["auth_header"] == "Bearer ***"


def test_trackers_get_masked_params_and_location(tmp_path, monkeypatch):
    from rlaif.tracking import Tracker, flat_config

    flat = flat_config({"judge": {"ref": dict(SPEC)}})
    _secret_free(json.dumps(flat))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://me:{PASSWORD}@mlflow.example.org")
    tracker = Tracker([], tmp_path)
    tracker.names = ["mlflow"]  # where() only: nothing is started
    assert tracker.where() == ["mlflow: https://me:***@mlflow.example.org"]


def test_verbose_logs_mask_url_credentials_and_bearer_tokens(caplog):
    install_log_redaction()  # what the CLI does at start
    with caplog.at_level(logging.DEBUG, logger="httpx"):
        logging.getLogger("httpx").debug("POST %s with %s", SPEC["base_url"], BEARER)
    _secret_free(caplog.text)
    assert "proxy-user:***@judge-proxy.internal" in caplog.text


# ---------------------------------------------------------------------- local paths


@pytest.mark.parametrize("text, expected", [
    ("{run}/checkpoints/step-2", "checkpoints/step-2"),                       # inside the run folder
    ("{run}", "my-run"),                                                      # the run folder itself
    ("/home/alice/.cache/huggingface/hub/models--org--tiny-lm/snapshots/0a1b/config.json",
     "org/tiny-lm/config.json"),                                              # the hub cache: an id
    ("FileNotFoundError: /home/alice/proj/.venv/lib/judge.yaml not found.",
     "FileNotFoundError: judge.yaml not found."),                             # elsewhere: last part
    ("~/judges/mine.yaml", "mine.yaml"),
    ("http://localhost:8000/v1/messages gpt2 org/name distinct-1/2/3 reward/mean",
     "http://localhost:8000/v1/messages gpt2 org/name distinct-1/2/3 reward/mean"),  # kept
])
def test_absolute_paths_become_publishable(tmp_path, text, expected):
    run = tmp_path / "my-run"
    assert publishable_text(text.format(run=run), run) == expected


def test_publishable_copies_a_tree():
    data = {"a": ["/x/y/z.yaml", 3, None], "/k/e/y": {"b": "rel/path"}}
    assert publishable(data) == {"a": ["z.yaml", 3, None], "y": {"b": "rel/path"}}
    assert data["a"][0] == "/x/y/z.yaml"


def test_model_card_and_report_hold_no_local_path_and_no_secret(tmp_path, monkeypatch):
    from rlaif.evaluation.comparison import compare_before_after
    from rlaif.evaluation.report import write_report
    from rlaif.model_card import build_card, card_record_from_run

    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-value-77")
    run = tmp_path / "my-run"
    run.mkdir()
    model = tmp_path / "models" / "my-base"
    model.mkdir(parents=True)
    judge = tmp_path / "judges" / "my-judge.yaml"
    judge.parent.mkdir()
    judge.write_text(yaml.safe_dump({"type": "function", "name": "mine", "function": "m:f",
                                     "scale": [0, 1], "description": "uses session-token-value-77"}))
    config = {"model": {"name_or_path": str(model)}, "judge": {"ref": str(judge)},
              "data": {"source": str(tmp_path / "data" / "prompts.jsonl"), "system_prompt": BEARER},
              "eval": {"enabled": True, "evaluator": {k: v for k, v in SPEC.items() if k != "auth_header"}},
              "output": {"dir": str(run)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/mean": 0.5}) + "\n")
    reply = "try /usr/bin/env python"  # what a model said is kept as it is
    cache = "/home/alice/.cache/huggingface/hub/models--org--tiny-lm/snapshots/0a1b"
    data = {"rows": [{"query": "q", "response_before": reply, "tox_before": 0.5,
                      "response_after": "a", "tox_after": 0.25}],
            "stats": compare_before_after([0.5], [0.25], threshold=0.5, seed=0),
            "meta": {"evaluator": "tox", "toxicity": "P(toxic)", "n_prompts": 1,
                     "before_model": cache, "after_model": str(run / "final"),
                     "fluency": {"lm": str(model), "definition": "perplexity"}}}
    write_report(run, data, metrics_path=run / "metrics.jsonl", extra={"labels": {"path": str(judge)}})
    report = json.loads((run / "report.json").read_text())
    outside_rows = json.dumps({k: v for k, v in report.items() if k != "rows"})
    assert str(tmp_path) not in outside_rows and "/home/alice" not in outside_rows
    assert report["meta"]["before_model"] == "org/tiny-lm" and report["meta"]["after_model"] == "final"
    assert report["training"]["metrics_path"] == "metrics.jsonl"
    assert report["rows"][0]["response_before"] == reply
    assert str(tmp_path) not in (run / "report.md").read_text().replace(reply, "")
    card = build_card(card_record_from_run(run))
    assert str(tmp_path) not in card and "/home/alice" not in card
    assert "`my-judge.yaml`" in card and "from `my-base` (local folder)" in card
    assert "function: m:f" in card  # the spec was still read from its file
    assert "base_url: http://proxy-user:***@judge-proxy.internal:8080/v1?api_key=***" in card
    _secret_free(card)
    assert "session-token-value-77" not in card
