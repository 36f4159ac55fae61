"""`WWW-Authenticate` challenges, parsed as docker/distribution's `challenge` package does (RFC 7235 syntax:
a scheme, then comma-separated `key=value` or `key="quoted value"` parameters)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lowercased: "basic" or "bearer"
    parameters: dict[str, str] = field(default_factory=dict)  # keys lowercased

    @property
    def realm(self) -> str:
        return self.parameters.get("realm", "")


def parse_challenges(headers: list[str]) -> list[Challenge]:
    challenges: list[Challenge] = []
    for header in headers:
        challenges.extend(_parse_header(header))
    return challenges


def _parse_header(text: str) -> list[Challenge]:
    found: list[Challenge] = []
    position = 0
    while position < len(text):
        position = _skip(text, position, " ,")
        scheme = _TOKEN.match(text, position)
        if scheme is None:
            break
        position = scheme.end()
        parameters: dict[str, str] = {}
        while True:
            position = _skip(text, position, " ")
            key = _TOKEN.match(text, position)
            if key is None or text[key.end() : key.end() + 1] != "=":
                break  # the next token is a new scheme, or the header ended
            position, value = _value(text, key.end() + 1)
            parameters[key.group().lower()] = value
            position = _skip(text, position, " ")
            if text[position : position + 1] != ",":
                break
            position += 1
        found.append(Challenge(scheme.group().lower(), parameters))
    return found


def _skip(text: str, position: int, characters: str) -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position


def _value(text: str, position: int) -> tuple[int, str]:
    if text[position : position + 1] != '"':
        token = _TOKEN.match(text, position)
        return (token.end(), token.group()) if token else (position, "")
    value: list[str] = []
    position += 1
    while position < len(text):
        character = text[position]
        if character == "\\" and position + 1 < len(text):
            value.append(text[position + 1])
            position += 2
            continue
        if character == '"':
            return position + 1, "".join(value)
        value.append(character)
        position += 1
    return position, "".join(value)
