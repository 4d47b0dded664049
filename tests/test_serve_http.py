"""`rlaif serve` over real HTTP on 127.0.0.1 (port chosen by the OS), with function judges.

Called the way each engine calls it: OpenRLHF's client (a query decoded from prompt + response
token ids by a real tokenizer), the TRL reward-function signature, veRL's compute_score, and
the native and pairwise endpoints; plus back-pressure, auth and unscored reporting.
Expected values: `judge_fns.insults` counts "idiot"/"stupid" and is NaN (unscored) on "Fine".
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import aiohttp
import pytest
from serve_helpers import GATE, metric, openrlhf_post, serving, write_spec

from rlaif.cli import main
from rlaif.integrations import verl
from rlaif.integrations.remote import RemoteJudge, remote_reward_function
from rlaif.judges.base import JudgeError, Sample
from rlaif.serve import ServeSettings, build_service


def post(url: str, body: dict, token: str | None = None, auth: str | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one POST."""
    headers = {"Content-Type": "application/json"}
    if token or auth:
        headers["Authorization"] = auth or f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


@pytest.fixture
def insults_spec(tmp_path):
    return write_spec(tmp_path, "insults", "judge_fns:insults")


def test_openrlhf_client_gets_serve_rm_shaped_rewards_from_a_decoded_query(insults_spec, tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    prompt, reply = "\n\nHuman: rate me\n\nAssistant:", " you stupid idiot"
    # OpenRLHF: query = decode(prompt ids + response ids (ending in EOS), skip_special_tokens=False)
    ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok(reply, add_special_tokens=False)["input_ids"]
    query = tok.decode(ids + [tok.eos_token_id], skip_special_tokens=False)
    assert query.endswith(tok.eos_token) and query.startswith(prompt)
    service = build_service(str(insults_spec), ServeSettings(eos_markers=(tok.eos_token,), unscored_fill=-1.0))
    with serving(service) as url:
        one = asyncio.run(openrlhf_post(f"{url}/get_reward", {"query": [query], "prompts": [prompt], "labels": [None]}))
        assert one == {"rewards": [2.0], "scores": [2.0], "extra_logs": {"rlaif_unscored": [0.0]}}
        # The older client sends a whole batch; an unsplittable query and an unscored one are filled, and counted.
        batch = {"query": [prompt + " Fine", "cut prompt stupid", prompt + " nice"], "prompts": [prompt] * 3,
                 "labels": ["a", "b", "c"]}
        many = asyncio.run(openrlhf_post(f"{url}/get_reward", batch))
        assert many["rewards"] == [-1.0, -1.0, 0.0] and many["extra_logs"]["rlaif_unscored"] == [1.0, 1.0, 0.0]
        assert metric(url, "rlaif_serve_unscored_filled_total") == 2
        assert metric(url, "rlaif_serve_unscored_total") == 2


def test_unscored_under_fill_error_is_a_502_naming_each_reason(insults_spec):
    with serving(build_service(str(insults_spec), ServeSettings())) as url:
        status, body, _ = post(f"{url}/get_reward", {"query": ["P Fine", "P idiot"], "prompts": ["P", "P"]})
        assert status == 502
        assert body["unscored"] == [{"index": 0, "error": "judge_fns:insults returned nan"}]
        with pytest.raises(aiohttp.ClientResponseError):  # what OpenRLHF's client sees, and retries
            asyncio.run(openrlhf_post(f"{url}/get_reward", {"query": ["P Fine"], "prompts": ["P"]}))


def test_native_endpoint_reports_value_or_reason_per_sample(insults_spec):
    with serving(build_service(str(insults_spec), ServeSettings())) as url:
        status, body, _ = post(f"{url}/v1/score", {"samples": [{"prompt": "p", "response": "idiot idiot"},
                                                               {"prompt": "p", "response": "Fine"}]})
        assert status == 200 and body["judge"] == "insults" and body["scale"] == [0.0, 10.0]
        assert [s["value"] for s in body["scores"]] == [2.0, None]
        assert body["scores"][1]["error"] == "judge_fns:insults returned nan" and body["unscored"] == 1
        assert {"cached", "requests", "cost_usd"} <= set(body["scores"][0])
        status, body, _ = post(f"{url}/v1/score", {"samples": [{"prompt": "p"}]})
        assert status == 400 and "samples[0]" in body["error"]


def test_trl_reward_function_and_remote_judge_call_the_service(insults_spec):
    with serving(build_service(str(insults_spec), ServeSettings())) as url:
        reward = remote_reward_function(url)
        assert reward.__name__ == "insults"
        logged = {}
        values = asyncio.run(reward(
            prompts=[[{"role": "user", "content": "Hi"}], "Plain prompt"],
            completions=[[{"role": "assistant", "content": "stupid"}], "Fine"],
            log_metric=lambda k, v: logged.__setitem__(k, v)))
        assert values == [1.0, None]  # None: TRL leaves it out of the reward, never a 0
        assert logged["insults/unscored"] == 1.0
        judge = RemoteJudge(url)
        assert judge.scale.high == 10.0 and judge.score([Sample("p", "idiot")])[0].value == 1.0
        judge.close()


def test_verl_compute_score_signatures(insults_spec, monkeypatch):
    with serving(build_service(str(insults_spec), ServeSettings())) as url:
        monkeypatch.setenv(verl.URL_ENV, url)
        info = {"prompt": [{"role": "user", "content": "hi"}]}
        assert verl.compute_score("hh", "you idiot", None, info) == {"score": 1.0, "rlaif_unscored": 0.0}
        assert asyncio.run(verl.compute_score_async("hh", "stupid", None, {})) == {"score": 1.0, "rlaif_unscored": 0.0}
        batch = verl.compute_score_batch(["hh"] * 2, ["idiot", "Fine"], [None] * 2, [info, info],
                                         url=url, unscored_fill=0.0)
        assert batch == [{"score": 1.0, "rlaif_unscored": 0.0}, {"score": 0.0, "rlaif_unscored": 1.0}]
        with pytest.raises(JudgeError, match="unscored_fill"):
            verl.compute_score("hh", "Fine", None, info)


def test_pairwise_endpoint_compares_with_the_same_judge(insults_spec):
    with serving(build_service(str(insults_spec), ServeSettings())) as url:
        status, body, _ = post(f"{url}/v1/compare", {"pairs": [{"prompt": "p", "a": "nice", "b": "idiot"},
                                                               {"prompt": "p", "a": "Fine", "b": "x"}]})
        assert status == 200 and body["unscored"] == 1
        assert body["preferences"][0]["verdict"] == "b"  # insults: more is higher on this toy scale
        assert body["preferences"][1]["verdict"] is None and "nan" in body["preferences"][1]["error"]


def test_a_full_queue_answers_429_with_retry_after_and_loses_nothing(tmp_path):
    spec = write_spec(tmp_path, "gated", "serve_helpers:gated_lengths", scale=(0, 1000))
    GATE.clear()
    service = build_service(str(spec), ServeSettings(max_batch=2, max_queue=4, max_wait_ms=0))
    with serving(service) as url:
        results: dict[str, tuple] = {}

        def send(key: str, n: int) -> None:
            results[key] = post(f"{url}/v1/score", {"samples": [{"response": "x" * (i + 1)} for i in range(n)]})

        threads = [threading.Thread(target=send, args=(k, 2)) for k in ("held", "queued")]
        for t in threads:
            t.start()
        for _ in range(6000):  # until both are inside the service (no timing assumed)
            if metric(url, "rlaif_serve_queued_samples") == 4:
                break
            threading.Event().wait(0.01)
        status, body, headers = post(f"{url}/v1/score", {"samples": [{"response": "late"}]})
        assert status == 429 and int(headers["Retry-After"]) >= 1 and "queue full" in body["error"]
        GATE.set()
        for t in threads:
            t.join(60)
        assert [r[0] for r in results.values()] == [200, 200]
        assert all([s["value"] for s in r[1]["scores"]] == [1.0, 2.0] for r in results.values())
        assert metric(url, "rlaif_serve_rejected_total") == 1


def test_a_token_is_required_when_set_and_openrlhf_can_send_it_in_the_url(insults_spec, caplog):
    caplog.set_level("DEBUG")
    token = "serve-token-DO-NOT-LEAK-42"
    with serving(build_service(str(insults_spec), ServeSettings(token=token))) as url:
        body = {"query": ["P idiot"], "prompts": ["P"]}
        assert post(f"{url}/get_reward", body)[0] == 401
        status, answer, _ = post(f"{url}/get_reward", body, token="wrong")
        assert status == 401 and token not in json.dumps(answer)
        assert post(f"{url}/get_reward", body, token=token)[:2] == (200, {"rewards": [1.0], "scores": [1.0],
                                                                        "extra_logs": {"rlaif_unscored": [0.0]}})
        host = url.removeprefix("http://")
        assert asyncio.run(openrlhf_post(f"http://rlaif:{token}@{host}/get_reward", body))["rewards"] == [1.0]
        with urllib.request.urlopen(f"{url}/health", timeout=30) as reply:  # load balancers probe without it
            assert json.loads(reply.read())["status"] == "ok"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/metrics", timeout=30)
        assert metric(url, "rlaif_serve_rejected_total", token=token) == 3  # two POSTs and /metrics
        with pytest.raises(JudgeError, match="401"):
            RemoteJudge(url, token="wrong").score([Sample("p", "r")])
        assert RemoteJudge(url, token=token).score([Sample("p", "idiot")])[0].value == 1.0
    assert token not in caplog.text


def test_the_cli_refuses_to_bind_beyond_loopback_without_a_token(insults_spec, capsys, monkeypatch):
    monkeypatch.delenv("RLAIF_SERVE_TOKEN", raising=False)
    assert main(["serve", str(insults_spec), "--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "not loopback" in err and "RLAIF_SERVE_TOKEN" in err
