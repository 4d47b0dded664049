"""The fake Claude server speaks both wire protocols to the real, unpatched clients."""

from __future__ import annotations

import json

import anthropic
import boto3
import pytest
from botocore.config import Config

from rlaif.testing.fake_claude import DUMMY_CREDENTIALS, FakeClaude
from rlaif.testing.fake_rules import fake_preference, fake_value, judged_text

TOOL = {
    "name": "submit_score",
    "description": "score",
    "input_schema": {
        "type": "object",
        "properties": {"rationale": {"type": "string"}, "score": {"type": "number", "minimum": -5, "maximum": 5}},
        "required": ["rationale", "score"],
    },
}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    """Dummy credentials from the environment, as users set real ones."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def _bedrock(url: str):
    return boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                        config=Config(retries={"mode": "standard", "max_attempts": 0}))


def test_score_rules_by_hand():
    text = "You are terrible and i hate you."  # 7 words, 2 bad words, 0 overclaims
    assert fake_value("score", text) == 1.0  # 5 - 2*2 on -5..5
    assert fake_value("harmlessness", text, (1, 10)) == 6.4  # 10 - 1.8*2
    assert fake_value("helpfulness", text, (1, 10)) == 2.8  # 1 + 1.8*(7 // 4)
    assert fake_value("honesty", "It always works, definitely.", (1, 10)) == 6.4  # 10 - 1.8*2
    assert fake_value("score", "stupid idiot dumb ugly worthless hate kill") == -5.0  # floored at low
    assert judged_text("x <response>\n hi \n</response> y") == "hi"


def test_anthropic_client_text_and_tool_replies_with_usage():
    with FakeClaude() as fake:
        client = anthropic.Anthropic(base_url=fake.url, max_retries=0)
        user = "Rate on a scale from -5 to 5.\n<response>I hate this</response>"
        text = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": user}])
        assert text.content[0].text.endswith("Score: 3")  # one bad word: 5 - 2
        assert text.usage.input_tokens == len(user.split())
        tool = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": user}],
                                      tools=[TOOL], tool_choice={"type": "tool", "name": "submit_score"})
        assert tool.content[0].type == "tool_use" and tool.content[0].input["score"] == 3.0
        assert tool.stop_reason == "tool_use"
        assert fake.requests == 2 and fake.count("/v1/messages") == 2


def test_bedrock_invoke_model_and_converse():
    with FakeClaude() as fake:
        client = _bedrock(fake.url)
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "tools": [TOOL],
                "messages": [{"role": "user", "content": "<response>nice</response>"}]}
        out = client.invoke_model(modelId="us.anthropic.claude-sonnet-4-6", body=json.dumps(body))
        reply = json.loads(out["body"].read())
        assert reply["content"][0]["input"]["score"] == 5.0
        conv = client.converse(
            modelId="anthropic.claude-sonnet-4-5-20250929-v1:0",
            messages=[{"role": "user", "content": [{"text": "scale from 1 to 10 <response>stupid</response>"}]}],
        )
        assert conv["output"]["message"]["content"][0]["text"].endswith("Score: 8.2")  # 10 - 1.8
        assert conv["usage"]["inputTokens"] == 6  # words in the user text
        assert fake.count("/invoke") == 1 and fake.count("/converse") == 1


def test_fault_queue_and_per_text_faults():
    with FakeClaude(faults=["500"], fault_on={"poison": ["429", "429"]}, retry_after=0.05) as fake:
        client = anthropic.Anthropic(base_url=fake.url, max_retries=0)

        def ask(text):
            return client.messages.create(model="m", max_tokens=5,
                                          messages=[{"role": "user", "content": f"<response>{text}</response>"}])

        with pytest.raises(anthropic.InternalServerError):
            ask("first")  # the queued 500 hits whatever comes next
        with pytest.raises(anthropic.RateLimitError) as err:
            ask("poison pill")
        assert err.value.response.headers["retry-after"] == "0.05"
        assert ask("clean").content[0].text.endswith("Score: 5")  # unaffected text
        with pytest.raises(anthropic.RateLimitError):
            ask("more poison")
        assert ask("poison again").content[0].text.endswith("Score: 5")  # per-text queue used up
        assert fake.requests == 5 and fake.count(fault="429") == 2 and fake.count(fault="500") == 1
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FakeClaude(faults=["418"])


def test_bedrock_error_shapes_reach_boto3_as_modelled_errors():
    with FakeClaude(faults=["429", "401"]) as fake:
        client = _bedrock(fake.url)
        body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []})
        with pytest.raises(client.exceptions.ThrottlingException):
            client.invoke_model(modelId="m", body=body)
        with pytest.raises(Exception) as err:
            client.invoke_model(modelId="m", body=body)
        assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"


PAIR_USER = "Which is kinder?\n<response_a>{a}</response_a>\n<response_b>{b}</response_b>"
PREFERENCE_TOOL = {
    "name": "submit_preference", "description": "prefer",
    "input_schema": {"type": "object", "properties": {
        "rationale": {"type": "string"}, "preference": {"type": "string", "enum": ["A", "B", "tie"]},
        "strength": {"type": "number", "minimum": 0, "maximum": 1}}},
}


def test_pairwise_rule_by_hand():
    assert fake_preference("I hate it", "Fine") == ("B", 0.2)  # 3 vs 5
    assert fake_preference("I hate it", "Fine", position_bias=3) == ("A", 0.1)  # 3 + 3 vs 5
    assert fake_preference("Fine", "I hate it", position_bias=3) == ("A", 0.5)  # 5 + 3 vs 3
    assert fake_preference("Fine", "Nice") == ("tie", 0.0)
    assert fake_preference("Fine", "Nice", position_bias=-1) == ("B", 0.1)  # a bias toward the second


def test_pairwise_requests_in_both_orders_with_scripted_bias_on_both_protocols():
    with FakeClaude(position_bias=3) as fake:
        client = anthropic.Anthropic(base_url=fake.url, max_retries=0)

        def ask(a, b, **tools):
            msg = client.messages.create(model="m", max_tokens=50, **tools,
                                         messages=[{"role": "user", "content": PAIR_USER.format(a=a, b=b)}])
            return msg.content[0]

        tool = ask("I hate it", "Fine", tools=[PREFERENCE_TOOL],
                   tool_choice={"type": "tool", "name": "submit_preference"})
        assert tool.name == "submit_preference" and (tool.input["preference"], tool.input["strength"]) == ("A", 0.1)
        swapped = ask("Fine", "I hate it")  # text reply: the same bias, the other order
        assert swapped.text.endswith("Preference: A\nStrength: 0.5")
        conv = _bedrock(fake.url).converse(
            modelId="m", messages=[{"role": "user", "content": [{"text": PAIR_USER.format(a="Fine", b="I hate it")}]}],
            toolConfig={"tools": [{"toolSpec": {"name": "submit_preference", "description": "p",
                                                "inputSchema": {"json": PREFERENCE_TOOL["input_schema"]}}}]})
        assert conv["output"]["message"]["content"][0]["toolUse"]["input"]["preference"] == "A"
        assert [r["text"] for r in fake.log][:2] == ["I hate it\nFine", "Fine\nI hate it"]  # faults match either
    with FakeClaude(quote_replies=True, faults=["bad_tool"]) as fake:
        client = anthropic.Anthropic(base_url=fake.url, max_retries=0)
        bad = client.messages.create(model="m", max_tokens=50, tools=[PREFERENCE_TOOL],
                                     messages=[{"role": "user", "content": PAIR_USER.format(a="x", b="y")}])
        assert (bad.content[0].input["preference"], bad.content[0].input["strength"]) == ("C", 7)
        text = client.messages.create(model="m", max_tokens=50,
                                      messages=[{"role": "user", "content": PAIR_USER.format(a="x", b="y")}])
        assert text.content[0].text.startswith("Reply A reads: x\nReply B reads: y\n")
