"""veRL's `custom_reward_function`, answered by an `rlaif serve` judge service.

    python -m verl.trainer.main_ppo ... \\
        custom_reward_function.path=$(python -c "import rlaif.integrations.verl as m; print(m.__file__)") \\
        custom_reward_function.name=compute_score \\
        +custom_reward_function.reward_kwargs.url=http://127.0.0.1:8000

veRL calls `compute_score(data_source, solution_str, ground_truth, extra_info)` per response
(its naive / prime reward managers; the reward loop awaits `compute_score_async`), or
`compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos)` with
`reward_model.reward_manager=batch` (one HTTP request per batch: use it for throughput).
`reward_kwargs` reach every call: `url` (else $RLAIF_SERVE_URL), `token_env` (the variable
holding the token, default RLAIF_SERVE_TOKEN), `prompt_key` (default "prompt") and
`unscored_fill`.

veRL does not hand the prompt to a reward function: put it in each row's `extra_info` when
you build the dataset (`extra_info["prompt"]`, text or a list of chat messages, which are
rendered the HH way like `rlaif.integrations.trl` does); without it the judge sees an empty
prompt. `ground_truth` and `data_source` are not used by rlaif judges.

Each answer is a dict, `{"score": value, "rlaif_unscored": 0.0 | 1.0}`, which veRL reads as
the reward plus an extra metric. An unscored sample raises `JudgeError` naming the reason,
unless `unscored_fill` is a number, which is then the score and `rlaif_unscored` is 1.0.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from rlaif.integrations.remote import TOKEN_ENV, RemoteJudge
from rlaif.integrations.trl import messages_to_text
from rlaif.judges.base import JudgeError, Sample, Score

URL_ENV = "RLAIF_SERVE_URL"
_clients: dict[tuple[str, str], RemoteJudge] = {}  # one client per service and token variable, per process
_lock = threading.Lock()


def _client(url: str | None, token_env: str) -> RemoteJudge:
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise JudgeError(f"no judge service URL: pass reward_kwargs.url or set ${URL_ENV} "
                         "(the address `rlaif serve` printed)")
    with _lock:
        if (url, token_env) not in _clients:
            _clients[(url, token_env)] = RemoteJudge(url, token_env=token_env)
        return _clients[(url, token_env)]


def _sample(solution_str: str, extra_info: Any, prompt_key: str) -> Sample:
    prompt = (extra_info or {}).get(prompt_key, "") if isinstance(extra_info, dict) else ""
    if hasattr(prompt, "tolist"):  # a chat prompt read from parquet is a numpy array of dicts
        prompt = prompt.tolist()
    return Sample(messages_to_text(prompt or "", dialogue=True), solution_str)


def _result(score: Score, fill: float | None) -> dict[str, float]:
    if score.value is not None:
        return {"score": float(score.value), "rlaif_unscored": 0.0}
    if fill is None:
        raise JudgeError(f"the judge could not score a response ({score.error}); set "
                         "reward_kwargs.unscored_fill to a number to train on with that value instead")
    return {"score": float(fill), "rlaif_unscored": 1.0}


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, *,
                  url: str | None = None, token_env: str = TOKEN_ENV, prompt_key: str = "prompt",
                  unscored_fill: float | None = None, **unused: Any) -> dict[str, float]:
    """veRL's per-response signature: the served judge's score of `solution_str`."""
    judge = _client(url, token_env)
    (score,) = judge.score([_sample(solution_str, extra_info, prompt_key)])
    return _result(score, unscored_fill)


async def compute_score_async(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, *,
                              url: str | None = None, token_env: str = TOKEN_ENV, prompt_key: str = "prompt",
                              unscored_fill: float | None = None, **unused: Any) -> dict[str, float]:
    """`compute_score` for veRL's async reward loop (awaited, many in flight)."""
    judge = _client(url, token_env)
    (score,) = await judge.ascore([_sample(solution_str, extra_info, prompt_key)])
    return _result(score, unscored_fill)


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, *, url: str | None = None,
                        token_env: str = TOKEN_ENV, prompt_key: str = "prompt",
                        unscored_fill: float | None = None, **unused: Any) -> list[dict[str, float]]:
    """veRL's BatchRewardManager signature: the whole batch in one request."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    judge = _client(url, token_env)
    scores = judge.score([_sample(s, info, prompt_key) for s, info in zip(solution_strs, infos)])
    return [_result(s, unscored_fill) for s in scores]
