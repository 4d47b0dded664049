"""The bearer token check: `Authorization: Bearer TOKEN`, or HTTP Basic with TOKEN as the password.

Basic is there for OpenRLHF, whose client sends no headers of its own: aiohttp turns the
credentials of a URL (`http://rlaif:TOKEN@host:5000/get_reward`) into a Basic header and
strips them from the URL it logs. The comparison takes constant time; the token is never
logged, echoed in an error, or written to a response.
"""

from __future__ import annotations

import base64
import binascii
import hmac


def presented_token(header: str | None) -> str | None:
    """The token an Authorization header carries (Bearer, or Basic's password); None if none."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer":
        return rest or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def authorized(header: str | None, token: str) -> bool:
    """Whether the Authorization header carries `token` (constant-time comparison)."""
    given = presented_token(header)
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
