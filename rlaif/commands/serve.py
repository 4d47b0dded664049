"""`rlaif serve JUDGE`: put a judge behind HTTP for OpenRLHF, veRL and TRL workers (docs/SERVE.md).

The bearer token comes from the environment ($RLAIF_SERVE_TOKEN, or the variable --token-env
names) or a file (--token-file), never from the command line, where `ps` would show it. Any
bind address other than loopback needs one. The work is done by `rlaif.serve`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "serve a judge over HTTP (OpenRLHF /get_reward, native /v1/score, /v1/compare, /metrics)"
TOKEN_ENV = "RLAIF_SERVE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif serve`."""
    parser.add_argument("judge", metavar="JUDGE",
                        help="built-in judge name (see `rlaif judges`) or a judge spec YAML path; a "
                        "`type: pairwise` judge is served on /v1/compare only")
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1; anything else needs a token)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: the OS picks one)")
    parser.add_argument("--cache", metavar="PATH", help="sqlite score cache shared by every caller")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field, value parsed as YAML (repeatable): --set device=cuda")
    parser.add_argument("--token-file", metavar="PATH", help="file holding the bearer token")
    parser.add_argument("--token-env", default=TOKEN_ENV, metavar="NAME",
                        help=f"environment variable holding the bearer token (default {TOKEN_ENV})")
    parser.add_argument("--unscored-fill", default="error", metavar="error|NUMBER",
                        help="what /get_reward (OpenRLHF) returns for a sample the judge could not score: "
                        "'error' (default: HTTP 502 naming the reasons; OpenRLHF retries, then drops "
                        "the reward) or a number such as 0 (counted in rlaif_serve_unscored_filled_total "
                        "and in OpenRLHF's extra_logs as rlaif_unscored)")
    parser.add_argument("--batching", choices=["auto", "on", "off"], default="auto",
                        help="coalesce concurrent requests into judge batches (auto: on for local "
                        "models, off for llm / pairwise judges)")
    parser.add_argument("--max-batch", type=int, default=64, metavar="N", help="samples per batch (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                        help="how long an idle judge waits to fill a batch (default 5)")
    parser.add_argument("--max-queue", type=int, default=4096, metavar="N",
                        help="samples waiting or being judged before requests get 429 (default 4096)")
    parser.add_argument("--timeout", type=float, default=150.0, metavar="S",
                        help="per-request timeout, then 504 (default 150; OpenRLHF's client waits 180)")
    parser.add_argument("--shutdown-timeout", type=float, default=300.0, metavar="S",
                        help="on SIGTERM, how long to wait for requests in flight (default 300)")


def read_token(args: argparse.Namespace) -> str | None:
    """The bearer token from --token-file or the environment; None when neither holds one."""
    if args.token_file:
        path = Path(args.token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
        if not token:
            raise ValueError(f"--token-file {path} is empty; write the token into it")
        return token
    return os.environ.get(args.token_env, "").strip() or None


def run(args: argparse.Namespace) -> int:
    """Build the judge, listen, serve until SIGTERM / SIGINT."""
    import asyncio

    from pydantic import ValidationError

    from rlaif.overrides import parse_overrides
    from rlaif.serve import ServeSettings, build_service, serve

    try:
        settings = ServeSettings(
            host=args.host, port=args.port, token=read_token(args), max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, request_timeout_s=args.timeout,
            shutdown_timeout_s=args.shutdown_timeout, batching=args.batching, unscored_fill=args.unscored_fill)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    service = build_service(args.judge, settings, parse_overrides(args.overrides), args.cache)
    how = (f"batching up to {settings.max_batch} samples, {settings.max_wait_ms:g} ms wait" if service.batching
           else "no batching (the judge keeps its own requests in flight)")
    auth = "token required" if settings.token is not None else "no token (loopback only)"

    def ready(url: str) -> None:
        print(f"rlaif serve: judge {service.name} ({service.judge_type}), {how}, queue {settings.max_queue}, "
              f"{auth}, unscored fill {settings.unscored_fill}", flush=True)
        print(f"rlaif serve: listening on {url}", flush=True)

    asyncio.run(serve(service, ready))
    m = service.metrics
    print(f"rlaif serve: stopped; answered {sum(m.requests.values())} requests, "
          f"{sum(m.samples.values())} samples, {sum(m.unscored.values())} unscored", file=sys.stderr)
    return 0
