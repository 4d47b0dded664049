"""Keeping credentials out of what rlaif writes: saved configs, model cards, trackers, error
messages, logs.

- `redact_text(text)`: a string with every known secret replaced by '***': the values of the
  credential environment variables (SECRET_ENV_VARS), anything shaped like a key (Anthropic
  `sk-ant-...`, AWS `AKIA...`/`ASIA...`, Hugging Face `hf_...`, GitHub `ghp_...`), a `Bearer`
  token, the password (or token) inside a URL (`http://user:***@host`) and the value of a
  secret-named URL parameter (`?api_key=***`).
- `redact_mapping(data)`: a copy of a dict/list tree where the string value of every
  secret-named key (api_key, secret, password, credential, ..._token) is '<redacted>', that
  value is masked wherever else it appears in the tree (whole, or inside a longer string), and
  every other string goes through `redact_text`.
- `install_log_redaction()`: scrub `redact_text` over every log record of the SDK loggers
  (anthropic, httpx, httpcore, botocore, boto3, urllib3) and rlaif's own; botocore logs signed
  headers at DEBUG. The `rlaif` CLI calls it at start; a library user who turns on DEBUG
  logging for those SDKs calls it once, before scoring. Calling it again does nothing.

The bottom layer: imports nothing from rlaif.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD",
)
# Key shapes scrubbed even when they did not come from the environment.
_SECRET_PATTERNS = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"
                              r"|\bhf_[A-Za-z0-9]{20,}\b|\bgh[pousr]_[A-Za-z0-9]{20,}\b")
# An HTTP bearer token (an `Authorization` header copied into a spec or a log line).
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")
# The user info of a URL: `scheme://user:password@` keeps the user, `scheme://token@` keeps nothing.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.\-]*://)([^\s/@?#:]*)(?::[^\s/@?#]*)?@", re.IGNORECASE)
# A URL query parameter whose name says it carries a credential.
_URL_SECRET_PARAM = re.compile(
    r"([?&;][\w.\-]*(?:key|token|secret|password|passwd|pwd|signature|sig|credential|auth)[\w.\-]*=)"
    r"[^&#\s'\"]+", re.IGNORECASE)
# Mapping keys whose values never reach a saved file (an inline judge spec could carry one);
# `token` only as the name's last word (`auth_token`, not `max_tokens` or `tokenizer`).
_SECRET_KEY = re.compile(r"api[_-]?key|(?:access|private|secret)[_-]?key|secret|password|passwd"
                         r"|credential|(?:^|[_\-])token$", re.IGNORECASE)
# A secret found under a secret-named key is masked where a string equals it from 4 characters
# on, inside longer strings from 8 on (a short one, `test`, would mask ordinary words).
_MIN_SECRET, _MIN_EMBEDDED_SECRET = 4, 8
LOGGER_PREFIXES = ("anthropic", "httpx", "httpcore", "botocore", "boto3", "urllib3", "rlaif")


def _url_userinfo(match: re.Match[str]) -> str:
    scheme, user = match.group(1), match.group(2)
    has_password = match.group(0).count(":") > scheme.count(":")
    return f"{scheme}{user}:***@" if has_password else f"{scheme}***@"


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """Replace every known secret (from the environment or `known`, or credential-shaped) with '***'."""
    values = [os.environ.get(var) or "" for var in SECRET_ENV_VARS]
    for value in sorted({v for v in (*values, *known) if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _URL_USERINFO.sub(_url_userinfo, text)
    text = _URL_SECRET_PARAM.sub(r"\1***", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _SECRET_PATTERNS.sub("***", text)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a credential (its string value is never written)."""
    return bool(_SECRET_KEY.search(str(key)))


def _secret_values(data: Any) -> set[str]:
    """The string values of every secret-named key in a dict/list tree."""
    if isinstance(data, dict):
        found = {v for k, v in data.items() if isinstance(v, str) and v and is_secret_key(k)}
        return found.union(*(_secret_values(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(_secret_values(v) for v in data))
    return set()


def redact_mapping(data: Any) -> Any:
    """A copy of `data`: secret-named keys' string values are '<redacted>', those values are
    masked wherever else they appear, and every string is `redact_text`-ed."""
    secrets = {s for s in _secret_values(data) if len(s) >= _MIN_SECRET}
    embedded = [s for s in secrets if len(s) >= _MIN_EMBEDDED_SECRET]

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            # Only strings: `max_tokens: 512` is a count, not a credential.
            return {k: "<redacted>" if isinstance(v, str) and is_secret_key(k) else clean(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return "***" if value in secrets else redact_text(value, embedded)
        return value

    return clean(data)


def _scrub(record: logging.LogRecord) -> None:
    """Redact a record's message and traceback in place (before any handler formats it)."""
    message = record.getMessage()
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None:
        # Tracebacks are formatted later from exc_info: pre-format and scrub them now.
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None


def install_log_redaction() -> None:
    """Scrub secrets from every record of the SDK loggers and rlaif's, from now on (idempotent).

    It wraps the log record factory, so it also covers loggers created later (boto3 makes its
    loggers when first imported) and records that reach any handler."""
    old = logging.getLogRecordFactory()
    if getattr(old, "_rlaif_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        if record.name.split(".")[0] in LOGGER_PREFIXES:
            _scrub(record)
        return record

    factory._rlaif_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
