"""What a registry lookup is asked with, as plain data: the reference, the credentials, and the registry settings.

The registry client (webhook/registry/) needs only this, the image library and the fact types it fills, never the
policy, the plan or the checks (an import contract holds it).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, NamedTuple

from pydantic import Field, StrictBool, StrictFloat

from policies.image.pull_secret_parse import Credential
from policies.schema import Strict as _Strict


class LookupKind(StrEnum):
    IMAGE = "image"  # the image as written: its facts feed the checks (and, mutating, the private-source rule)
    MIRROR = "mirror"  # a rewritten image on a mirror: does the mirror serve it to this pod?


class Lookup(NamedTuple):  # a tuple: built per image per review, and a dict key, so cheap to make and hash
    kind: LookupKind
    reference: str  # the pull reference to ask for
    credentials: tuple[Credential, ...]  # what the kubelet would send, in the order it tries them


class CacheConfig(_Strict):
    positive_seconds: Annotated[StrictFloat, Field(ge=0)] = 300
    negative_seconds: Annotated[StrictFloat, Field(ge=0)] = 30


class RegistryConfig(_Strict):
    timeout_seconds: Annotated[StrictFloat, Field(gt=0, le=30)] = 3
    hosts_dir: str | None = None
    cache: CacheConfig = CacheConfig()
    allow_link_local: StrictBool = False  # link-local/metadata addresses are refused: no SSRF through the webhook
