"""Judges as an HTTP reward service for distributed trainers (`rlaif serve`; docs/SERVE.md).

    settings.py    ServeSettings: bind address, token, batching, queue, timeouts, fill value
    protocol.py    OpenRLHF's /get_reward, the native /v1/score and the pairwise /v1/compare bodies
    scheduling.py  dynamic batching (local models) or direct calls (API judges); back-pressure
    auth.py        the bearer token check (Bearer, or Basic with the token as password)
    metrics.py     Prometheus text for /metrics
    app.py         JudgeService: the aiohttp routes and middlewares around one judge
    server.py      build_service, start / serve (SIGTERM drains, the cache is kept)

The clients live one layer down, in `rlaif.integrations.remote` (a Judge that calls the
service: TRL reward function, library use) and `rlaif.integrations.verl` (veRL's
custom_reward_function).
"""

from rlaif.serve.app import JudgeService
from rlaif.serve.server import RunningService, build_service, serve, start
from rlaif.serve.settings import ServeSettings

__all__ = ["JudgeService", "RunningService", "ServeSettings", "build_service", "serve", "start"]
