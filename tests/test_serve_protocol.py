"""`rlaif serve`'s pieces without a socket: the OpenRLHF split, the fill rule, auth, settings,
the Prometheus text and the dynamic batcher's coalescing and back-pressure."""

from __future__ import annotations

import asyncio
import base64

import pytest
from pydantic import ValidationError

from rlaif.judges.base import JudgeError, Sample, Score
from rlaif.serve.auth import authorized, presented_token
from rlaif.serve.metrics import Histogram, ServeMetrics
from rlaif.serve.protocol import (
    RequestError, UnscoredError, openrlhf_answer, parse_native, parse_openrlhf, split_query, strip_eos,
)
from rlaif.serve.scheduling import DynamicBatcher, Overloaded
from rlaif.serve.settings import DEFAULT_EOS_MARKERS, ServeSettings, is_loopback


@pytest.mark.parametrize("query, prompt, response", [
    ("Human: hi\n\nAssistant: hello<|im_end|>", "Human: hi\n\nAssistant:", " hello"),  # EOS cut
    ("PROMPT reply </s> </s>", "PROMPT", " reply "),  # repeated markers and the spaces between them
    ("PROMPT", "PROMPT", ""),  # an empty response is a response
    ("ROMPT reply", "PROMPT", None),  # prompt cut from the left by OpenRLHF: not guessed
])
def test_query_split_takes_what_follows_the_prompt(query, prompt, response):
    assert split_query(query, prompt, DEFAULT_EOS_MARKERS) == response


def test_strip_eos_keeps_markers_inside_the_text():
    assert strip_eos("a </s> b", ["</s>"]) == "a </s> b"


def test_openrlhf_body_validation_names_the_fix():
    with pytest.raises(RequestError, match="no 'prompts'"):
        parse_openrlhf({"query": ["a"]}, ())
    with pytest.raises(RequestError, match="1 queries but 2 prompts"):
        parse_openrlhf({"query": ["a"], "prompts": ["a", "b"]}, ())
    samples, unsplit = parse_openrlhf({"query": ["P r", "x"], "prompts": ["P", "P"], "labels": ["gold", None]}, ())
    assert samples[0] == Sample("P", " r", {"label": "gold"}) and list(unsplit) == [1]


def test_unscored_is_an_error_or_the_configured_fill_never_a_silent_zero():
    scores = [Score(0.7), Score.failed("API refused")]
    with pytest.raises(UnscoredError) as info:
        openrlhf_answer(scores, "error")
    assert info.value.reasons == {1: "API refused"}
    body, filled = openrlhf_answer(scores, -1.0)
    assert body == {"rewards": [0.7, -1.0], "scores": [0.7, -1.0], "extra_logs": {"rlaif_unscored": [0.0, 1.0]}}
    assert filled == 1


def test_native_body_validation():
    with pytest.raises(RequestError, match=r"samples\[0\]"):
        parse_native({"samples": [{"prompt": "p"}]})
    assert parse_native({"samples": [{"response": "r"}]}) == [Sample("", "r")]


@pytest.mark.parametrize("header, token", [
    ("Bearer s3cret", "s3cret"),
    ("Basic " + base64.b64encode(b"rlaif:s3cret").decode(), "s3cret"),  # OpenRLHF: token in the URL
    ("Basic !!!", None),
    ("Token s3cret", None),
    (None, None),
])
def test_presented_token(header, token):
    assert presented_token(header) == token
    assert authorized(header, "s3cret") is (token == "s3cret")


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("judge.internal", False),
])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_settings_refuse_an_open_bind_without_a_token_and_bad_fills():
    with pytest.raises(ValidationError, match="not loopback"):
        ServeSettings(host="0.0.0.0")
    opened = ServeSettings(host="0.0.0.0", token="s3cret-token")
    assert opened.token.get_secret_value() == "s3cret-token" and "s3cret" not in repr(opened)
    with pytest.raises(ValidationError, match="'error' or a number"):
        ServeSettings(unscored_fill="zero")
    assert ServeSettings(unscored_fill="0").unscored_fill == 0.0
    with pytest.raises(ValidationError, match="below max_batch"):
        ServeSettings(max_batch=64, max_queue=8)
    assert ServeSettings().coalesces("classifier") and not ServeSettings().coalesces("llm")
    assert ServeSettings(batching="on").coalesces("llm")


def test_histogram_is_cumulative_and_metrics_text_is_prometheus():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.5, 5.0):
        h.observe(v, (("endpoint", "score"),))
    lines = h.lines("x")
    assert 'x_bucket{endpoint="score",le="0.1"} 1' in lines
    assert 'x_bucket{endpoint="score",le="1"} 2' in lines
    assert 'x_bucket{endpoint="score",le="+Inf"} 3' in lines
    assert 'x_count{endpoint="score"} 3' in lines
    m = ServeMetrics()
    m.request_done("get_reward", 200, 0.01)
    text = m.render('a "quoted" judge', lambda: None, 0)
    assert 'rlaif_serve_info{judge="a \\"quoted\\" judge"} 1' in text
    assert 'rlaif_serve_requests_total{endpoint="get_reward",code="200"} 1' in text
    assert "# TYPE rlaif_serve_request_latency_seconds histogram" in text


def test_batcher_coalesces_concurrent_requests_and_refuses_beyond_the_queue():
    calls: list[int] = []
    release = asyncio.Event

    async def main() -> None:
        gate = release()

        async def work(items):
            calls.append(len(items))
            await gate.wait()
            return [Score(float(len(s.response))) for s in items], None

        batcher = DynamicBatcher(work, max_batch=8, max_wait_s=0.0, max_queue=8)
        batcher.start()
        first = asyncio.ensure_future(batcher.score([Sample("", "a")], 60))
        while not calls:  # the first request is being judged, alone
            await asyncio.sleep(0.001)
        waiting = [asyncio.ensure_future(batcher.score([Sample("", "bb"), Sample("", "ccc")], 60)) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as info:
            await batcher.score([Sample("", "d")] * 2, 60)  # 1 running + 6 waiting + 2 > 8
        assert info.value.retry_after_s >= 1
        gate.set()
        assert [s.value for s in await first] == [1.0]
        for fut in waiting:
            assert [s.value for s in await fut] == [2.0, 3.0]
        await batcher.close()

    asyncio.run(main())
    assert calls == [1, 6]  # the three waiting requests went to the judge as one batch


def test_a_judge_error_keeps_partial_scores_and_marks_the_rest():
    from concurrent.futures import ThreadPoolExecutor

    from rlaif.serve.scheduling import judge_or_unscored

    class Stops:
        name = "stops"

        def score(self, samples):
            raise JudgeError("budget reached", partial=[Score(1.0), None])

    with ThreadPoolExecutor(1) as pool:
        scores, error = asyncio.run(judge_or_unscored(Stops(), [Sample("", "a"), Sample("", "b")], pool))
    assert scores[0].value == 1.0 and scores[1].value is None
    assert "budget reached" in scores[1].error and isinstance(error, JudgeError)


def test_identical_samples_in_flight_share_one_judge_call():
    from rlaif.serve.scheduling import SharedCalls

    asked: list[str] = []

    async def main() -> None:
        gate = asyncio.Event()

        async def work(items):
            asked.extend(s.response for s in items)
            await gate.wait()
            return [Score(float(len(s.response))) for s in items], None

        shared = SharedCalls(work)
        one = asyncio.ensure_future(shared([Sample("p", "same"), Sample("p", "a")]))
        await asyncio.sleep(0)
        two = asyncio.ensure_future(shared([Sample("p", "same"), Sample("p", "bb")]))
        await asyncio.sleep(0)
        gate.set()
        assert [s.value for s in (await one)[0]] == [4.0, 1.0]
        assert [s.value for s in (await two)[0]] == [4.0, 2.0]

    asyncio.run(main())
    assert sorted(asked) == ["a", "bb", "same"]  # "same" was asked once for both callers
