"""URLs with credentials: `${VAR}` placeholders, and redaction so that no secret reaches a log or an error.

Credentials never live in a config file: a camera URL carries `${VAR}` placeholders that are expanded from
the environment when the stream opens, and every URL shown in a log, a metric or an error goes through
`redact_url`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import List, Optional, Tuple

from core.errors import ConfigError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
# A URL quoted inside a text (an exception message): the scheme, then everything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*", re.I)


def split_userinfo(url: str) -> Tuple[str, Optional[str], Optional[str], str]:
    """(scheme, user, password, rest) of a URL; user/password None when absent.

    The userinfo runs to the URL's LAST '@', not to the first '/': a camera password such as `ab/cd` or
    `p@ss` is still a password (RFC 3986 wants it percent-encoded, operators do not), and treating its tail as
    the path would leak it. urllib.parse stops at the first '/', so both readings are taken (see
    `inline_password`)."""
    scheme = _SCHEME.match(url)
    if not scheme or "@" not in url[scheme.end():]:
        return (scheme.group(0) if scheme else "", None, None, url[scheme.end():] if scheme else url)
    at = url.rindex("@")
    userinfo, rest = url[scheme.end():at], url[at + 1:]
    user, colon, password = userinfo.partition(":")
    return scheme.group(0), user, (password if colon else None), rest


# Query parameters that carry a credential (`rtsp://host/live?user=op&password=...`, `...?token=...`): cameras
# and gateways take them there as well as in the userinfo.
_SECRET_PARAMETER = (r"pass(?:word|wd|phrase)?|pwd|secret|token|access_token|auth|authorization|key|apikey|api_key|"
                     r"signature|sig")
_SECRET_QUERY = re.compile(rf"(?i)([?&;](?:{_SECRET_PARAMETER})=)([^&;#\s'\"<>]*)")


def inline_password(url: str) -> bool:
    """True when the URL carries a password (in its userinfo or a credential query parameter) that is not
    exactly one ${VAR} placeholder."""
    _, _, password, rest = split_userinfo(url)
    try:
        parsed = urllib.parse.urlsplit(url).password
    except ValueError:  # a malformed port or IPv6 literal: the reading above decides
        parsed = None
    query = [match.group(2) for match in _SECRET_QUERY.finditer(rest)]
    return any(p is not None and not PLACEHOLDER.fullmatch(p) for p in (password, parsed, *query))


def redact_url(text: str) -> str:
    """Every URL in `text` (or `text` itself, a URL) with its password and everything else before the host
    replaced: `scheme://user:***@host/...`. A user name alone is kept (it is not a secret)."""
    if _SCHEME.match(text):  # a URL (perhaps with a space in its password): up to its last '@'; a message
        return _redact_one(text)  # that only starts with one is over-redacted, never under
    return _URL_IN_TEXT.sub(lambda m: _redact_one(m.group(0)), text)


def _redact_one(url: str) -> str:
    scheme, user, password, rest = split_userinfo(url)
    rest = _SECRET_QUERY.sub(lambda m: m.group(1) + "***", rest)
    if user is None:
        return scheme + rest
    return f"{scheme}{user}:***@{rest}" if password is not None else f"{scheme}{user}@{rest}"


def scrub(text: str, secrets: List[str]) -> str:
    """`text` with every URL password and every given secret value replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact_url(text)


def placeholder_values(text: str) -> List[str]:
    """The environment values the `${VAR}` placeholders of `text` expand to (to scrub them from messages)."""
    return [os.environ[name] for name in PLACEHOLDER.findall(text) if os.environ.get(name)]


def expand_placeholders(text: str, where: str) -> str:
    """Replace `${VAR}` with the environment's value; a missing variable is an error naming `where` and VAR."""
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return PLACEHOLDER.sub(substitute, text)


