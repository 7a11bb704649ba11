"""The one search for secrets in what a program wrote, used by every secret test.

``secret_forms`` lists each form a secret can take in output, with a name for it: an API
key in any letter case and without its dashes, an issued token whole and its payload and
signature alone. ``leaks`` finds those forms, any piece of FRAGMENT characters of a
token's payload or signature (a token cut short still leaks its claims, the API key among
them), and anything shaped like a JWT, and says where: the stream, the channel (after a
line ``=== channel NAME ===``) and the line, with the secret replaced by its name, so that
a failing test never prints a secret itself.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{2,}")
_CHANNEL = re.compile(r"=== channel (\S+) ===")
FRAGMENT = 16
"""Characters of a token part that count as a leak: 96 bits, never there by chance."""


def _is_jwt_header(segment: str) -> bool:
    try:
        text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode().strip()
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def secret_forms(keys: Iterable[str] = (), tokens: Iterable[str] = (),
                 others: Mapping[str, str] | None = None) -> dict[str, str]:
    """{secret text: what to call it} for every form the search looks for; ``others``
    adds secrets of other kinds (passwords, other vendors' credentials) by name."""
    forms = dict(others or {})
    for key in keys:
        forms[key] = "API key"
        forms[key.replace("-", "")] = "API key (no dashes)"
    for number, token in enumerate(tokens, 1):
        forms[token] = f"issued token #{number}"
        parts = token.split(".")
        if len(parts) == 3:
            forms[parts[1]] = f"issued token #{number} (payload)"
            forms[parts[2]] = f"issued token #{number} (signature)"
    return forms


def leaks(output: str, forms: Mapping[str, str], stream: str) -> list[str]:
    """'<stream>[/<channel>] line N: <what>: <the line, the secret replaced by its name>'
    for each form of a secret (any letter case), each piece of a token and each JWT-shaped
    string in ``output``."""
    found = []
    channel = None
    fragments = _fragments(forms)
    for number, line in enumerate(output.splitlines(), 1):
        marker = _CHANNEL.fullmatch(line)
        if marker:
            channel = marker.group(1)
            continue
        where = f"{stream}/{channel} line {number}" if channel else f"{stream} line {number}"
        named = set()
        lowered = line.lower()
        for secret, what in forms.items():
            at = lowered.find(secret.lower())
            if at >= 0:
                named.add(what)
                found.append(f"{where}: {what}: {_around(line, at, len(secret), what)}")
        for at in range(len(line) - FRAGMENT + 1):
            what = fragments.get(line[at:at + FRAGMENT])
            if what is not None and what not in named:
                named.add(what)
                found.append(f"{where}: a piece of {what}: {_around(line, at, FRAGMENT, what)}")
        for candidate in _JWT_SHAPE.finditer(line):
            if _is_jwt_header(candidate.group(0).split(".")[0]):
                found.append(f"{where}: a JWT-shaped string: "
                             f"{_around(line, candidate.start(), len(candidate.group(0)), 'JWT')}")
    return found


def _fragments(forms: Mapping[str, str]) -> dict[str, str]:
    """Every FRAGMENT-long piece of the tokens' payloads and signatures, by name."""
    pieces = {}
    for secret, what in forms.items():
        if what.endswith(("(payload)", "(signature)")):
            for at in range(len(secret) - FRAGMENT + 1):
                pieces[secret[at:at + FRAGMENT]] = what
    return pieces


def assert_no_leaks(outputs: Mapping[str, str], forms: Mapping[str, str]) -> None:
    """Fails listing every leak in ``outputs`` ({where: text})."""
    found = [leak for where, text in outputs.items() for leak in leaks(text, forms, where)]
    assert not found, f"{len(found)} leaks:\n" + "\n".join(found[:40])


def _around(line: str, at: int, length: int, what: str) -> str:
    """The line near a secret, the secret itself replaced by its name."""
    before = line[max(0, at - 100):at]
    after = line[at + length:at + length + 60]
    return f"{'...' if at > 100 else ''}{before}<{what}>{after}"
