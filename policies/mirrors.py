"""Mirror rewrites: which images move to which mirror, as RFC 6902 `replace` operations.

A rule with `verify: true` rewrites only when the facts say the mirror serves that exact image, so a rewrite
can never turn a pullable image into an ErrImagePull. The webhook asks `candidates()` what to verify.
"""

from __future__ import annotations

from policies.config import Mirror, Policy
from policies.model import ContainerImage, Facts, PatchOperation, Workload
from policies.reference import InvalidReference, parse_normalized


def _matches(rule: Mirror, name: str, domain: str) -> str | None:
    """The part of `name` the mirror replaces, or None when the rule does not apply."""
    if rule.registry is not None:
        return domain if domain == rule.registry else None
    prefix = rule.prefix or ""
    return prefix if name == prefix or name.startswith(prefix + "/") else None


def mirrored(image: ContainerImage, policy: Policy) -> tuple[Mirror, str] | None:
    """The first rule that applies and the image string it rewrites to (None: no rule, or no valid result)."""
    reference = image.reference
    if reference is None:
        return None
    for rule in policy.mirrors:
        replaced = _matches(rule, reference.name, reference.domain)
        if replaced is None:
            continue
        rewritten = rule.mirror + reference.name[len(replaced) :]
        if reference.tag is not None:
            rewritten += ":" + reference.tag
        if reference.digest is not None:
            rewritten += "@" + reference.digest
        try:
            parse_normalized(rewritten)
        except InvalidReference:
            return None  # e.g. the mirror's path makes the name too long: leave the image alone
        return rule, rewritten
    return None


def candidates(workload: Workload, policy: Policy) -> list[str]:
    """Rewritten images whose availability on the mirror must be verified before rewriting."""
    found = (mirrored(image, policy) for image in workload.images)
    return sorted({target for hit in found if hit is not None and hit[0].verify for target in [hit[1]]})


def rewrites(workload: Workload, facts: Facts, policy: Policy) -> tuple[PatchOperation, ...]:
    operations = []
    for image in workload.images:
        hit = mirrored(image, policy)
        if hit is None:
            continue
        rule, target = hit
        if rule.verify and facts.mirror_serves.get(target) is not True:
            continue
        operations.append(PatchOperation(op="replace", path=image.pointer, value=target))
    return tuple(operations)
