"""`rlaif serve` with Claude judges: the real anthropic client against the fake server on 127.0.0.1.

Fake rule (rlaif/testing/fake_claude.py), toxicity on -5..5: 5 - 2 x (bad words in the reply);
"You are terrible and i hate you." has two -> 1.0, a reply without bad words -> 5.0.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from serve_helpers import metric, openrlhf_post, serving

from rlaif.integrations.remote import RemoteJudge
from rlaif.judges.base import JudgeError
from rlaif.serve import ServeSettings, build_service
from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude

PROMPT = "\n\nHuman: Say something.\n\nAssistant:"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def claude(fake: FakeClaude, **extra) -> dict:
    return {"base_url": fake.url, "requests_per_minute": None, "max_retries": 4, "timeout": 10.0, **extra}


def replies(n: int) -> list[str]:
    return [f" You are terrible and i hate you. ({i})" if i % 2 else f" Have a lovely day ({i})." for i in range(n)]


async def many(url: str, texts: list[str]) -> list[dict]:
    """One OpenRLHF request per reply, all at once (as its vLLM workers send them)."""
    return await asyncio.gather(*(openrlhf_post(f"{url}/get_reward", {"query": [PROMPT + t], "prompts": [PROMPT],
                                                                      "labels": [""]}) for t in texts))


def test_shared_cache_and_retries_serve_concurrent_openrlhf_workers(tmp_path):
    texts = replies(12)
    with FakeClaude(faults=["429", "429", "429"], retry_after=0.05) as fake:
        service = build_service("claude-toxicity-anthropic", ServeSettings(), claude(fake),
                                cache=str(tmp_path / "cache.sqlite"))
        assert not service.batching  # an API judge keeps its own requests in flight
        with serving(service) as url:
            first = asyncio.run(many(url, texts))
            assert [a["rewards"] for a in first] == [[1.0] if i % 2 else [5.0] for i in range(12)]
            assert fake.requests == 12 + 3  # three scripted 429s, retried by the SDK
            again = asyncio.run(many(url, texts))
            assert again == first and fake.requests == 15  # every repeat from the shared cache
            assert metric(url, "rlaif_serve_cache_hits_total") == 12
            assert metric(url, "rlaif_serve_judge_requests_total") == 15
            assert metric(url, "rlaif_serve_cost_usd_total") > 0


def test_budget_stop_is_reported_per_sample_never_as_a_zero(tmp_path):
    with FakeClaude() as fake:
        service = build_service("claude-toxicity-anthropic", ServeSettings(),
                                claude(fake, max_concurrency=1, budget={"max_requests": 2}))
        with serving(service) as url:
            judge = RemoteJudge(url)
            scores = judge.score([("p", t) for t in replies(4)])
            assert [s.value for s in scores[:2]] == [5.0, 1.0]
            assert scores[2].value is None and "budget" in scores[2].error.lower()
            assert judge.usage().requests == 2 and judge.usage().cost_usd > 0
            assert metric(url, "rlaif_serve_unscored_total") == 2
            assert metric(url, "rlaif_serve_judge_errors_total") == 1


def test_a_pairwise_judge_is_served_on_the_pairwise_endpoint_only():
    with FakeClaude() as fake:
        service = build_service("claude-pairwise-anthropic", ServeSettings(), claude(fake))
        with serving(service) as url:
            body = {"pairs": [{"prompt": "Say something.", "a": "Have a lovely day.", "b": "I hate you, idiot."}]}
            request = urllib.request.Request(f"{url}/v1/compare", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as reply:
                answer = json.loads(reply.read())
            (pref,) = answer["preferences"]
            assert pref["verdict"] == "a" and pref["consistent"] is True and len(pref["orders"]) == 2
            assert fake.requests == 2  # both orders asked
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(urllib.request.Request(
                    f"{url}/get_reward", data=b'{"query": [], "prompts": []}'), timeout=30)
            assert info.value.code == 404
            with pytest.raises(JudgeError, match="pairwise"):
                RemoteJudge(url)
