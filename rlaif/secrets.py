"""Keeping credentials out of what rlaif writes: saved configs, error messages, logs.

- `redact_mapping(data)`: a copy of a dict/list tree where the string value of every
  secret-looking key (api_key, secret, password, token, credential) is '<redacted>'.
- `redact_text(text)`: a string with every known secret replaced by '***': the values of the
  credential environment variables, and anything shaped like an Anthropic or AWS key.
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
from typing import Any

SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
)
# Key shapes scrubbed even when they did not come from the environment.
_SECRET_PATTERNS = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b")
# Mapping keys whose values never reach a saved file (an inline judge spec could carry one).
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|token|credential)", re.IGNORECASE)
LOGGER_PREFIXES = ("anthropic", "httpx", "httpcore", "botocore", "boto3", "urllib3", "rlaif")


def redact_text(text: str) -> str:
    """Replace every known secret (from the environment, or key-shaped) with '***'."""
    for var in SECRET_ENV_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _SECRET_PATTERNS.sub("***", text)


def redact_mapping(data: Any) -> Any:
    """A copy of `data` with the string values of secret-looking keys replaced by '<redacted>'."""
    if isinstance(data, dict):
        # Only strings: `max_tokens: 512` is a count, not a credential.
        return {k: ("<redacted>" if isinstance(v, str) and _SECRET_KEY.search(str(k)) else redact_mapping(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [redact_mapping(v) for v in data]
    return data


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
