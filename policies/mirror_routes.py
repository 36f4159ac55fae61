"""Which mirror rule applies to an image, and the image string it rewrites to (the rules' matching, remembered
per policy: a review plans each image several times, and reviews repeat the same few images).

A registry rule matches the image's registry, a prefix rule whole path components of its name (`k8s.gcr.io` never
matches `k8s.gcr.io.evil.com`); Docker Hub's aliases are normalized as image names are. The tag and digest are kept
exactly as written. The first matching rule wins, unless whether it applies hangs on namespace labels nobody
knows: then no later rule is chosen (see `rule_for`).
"""

from __future__ import annotations

from functools import lru_cache

from policies.config import Mirror, Policy
from policies.image.go_ports import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN
from policies.image.reference import InvalidReference, parse_normalized
from policies.model import ClusterFacts, ContainerImage

# How a rule may name Docker Hub; image names are normalized to DEFAULT_DOMAIN (registry-1 is its API host).
_DOCKER_HUB_ALIASES = {LEGACY_DEFAULT_DOMAIN: DEFAULT_DOMAIN, "registry-1.docker.io": DEFAULT_DOMAIN}


def _source_of(rule: Mirror) -> tuple[str, bool]:
    """The rule's source, normalized as image names are (index.docker.io is docker.io); True for a registry rule."""
    if rule.registry is not None:
        return _DOCKER_HUB_ALIASES.get(rule.registry, rule.registry), True
    prefix = rule.prefix or ""
    host, _, rest = prefix.partition("/")
    host = _DOCKER_HUB_ALIASES.get(host, host)
    return (host + "/" + rest) if rest else host, False


@lru_cache(maxsize=8192)
def _valid_name(reference: str) -> bool:
    """Reviews repeat the same few images and each is planned several times: parse each rewritten name once."""
    try:
        parse_normalized(reference)
    except InvalidReference:
        return False
    return True


def _matches(rule: Mirror, name: str, domain: str) -> str | None:
    """The part of `name` the mirror replaces, or None when the rule does not apply.

    A registry rule compares whole hosts (with the port); a prefix matches whole path components only, so
    `k8s.gcr.io` never matches `k8s.gcr.io.evil.com/...` and `k8s.gcr.io/pause` never `k8s.gcr.io/pause-x`.
    """
    source, is_registry = _source_of(rule)
    if is_registry:
        return domain if domain == source else None
    return source if name == source or name.startswith(source + "/") else None


def _under(name: str, mirror: str) -> bool:
    return name == mirror or name.startswith(mirror + "/")


def already_mirrored(image: ContainerImage, policy: Policy) -> bool:
    """The image already names a configured mirror: rewriting it again would stack prefixes."""
    reference = image.reference
    return reference is not None and any(_under(reference.name, rule.mirror) for rule in policy.mirrors)


def mirrored(image: ContainerImage, policy: Policy, cluster: ClusterFacts) -> tuple[Mirror, str] | None:
    """The first rule that applies (in the image's namespace) and the image string it rewrites to.

    None: no rule applies, the image already names a mirror, the rewritten name would be invalid, or whether the
    rule applies depends on namespace labels nobody knows (see `plan`, which reports those cases). The tag and
    digest are kept exactly as written: an implicit tag stays implicit, a tag beside a digest stays.
    """
    hit = rule_for(image, policy, cluster)
    if hit is None or not hit[1] or not hit[2]:
        return None
    return hit[0], hit[1]


def rule_for(image: ContainerImage, policy: Policy, cluster: ClusterFacts) -> tuple[Mirror, str, bool] | None:
    """The first rule matching the image whose namespaces include the image's, with its rewrite and True; or
    the first matching rule whose namespace selector could not be evaluated, with False: a later rule cannot
    be chosen while an earlier one may apply."""
    routes = _routes(policy)
    if not routes.scoped:  # the common policy: whether a rule applies hangs on the image alone
        return routes.first(image)
    namespace = image.pod.namespace
    for rule, target in routes.targets(image):
        applies = rule.applies_in(namespace, cluster.namespace_labels)
        if applies is None:
            return rule, target, False
        if applies:
            return rule, target, True
    return None


class _Routes:
    """One policy's rules, with what each image string rewrites to remembered: a review plans each image several
    times (lookups, plan, patch), and reviews repeat the same few images."""

    MEMORY = 8192  # image strings remembered per policy; forgotten all at once when full

    def __init__(self, policy: Policy) -> None:
        self.policy = policy  # held, so the id keying _ROUTES is never reused while this entry lives
        self.scoped = any(rule.namespaces is not None for rule in policy.mirrors)  # some rule names namespaces
        self._targets: dict[str, tuple[tuple[Mirror, str], ...]] = {}
        self._first: dict[str, tuple[Mirror, str, bool] | None] = {}

    def first(self, image: ContainerImage) -> tuple[Mirror, str, bool] | None:
        """The first matching rule, its rewrite and True, when no rule names namespaces (else see _rule_for)."""
        if image.image in self._first:
            return self._first[image.image]
        if len(self._first) >= self.MEMORY:
            self._first.clear()
        matched = self.targets(image)
        found = self._first[image.image] = (*matched[0], True) if matched else None
        return found

    def targets(self, image: ContainerImage) -> tuple[tuple[Mirror, str], ...]:
        """Every rule that matches the image, in policy order, with its rewrite ("" if the name would be
        invalid); namespaces are not considered here."""
        found = self._targets.get(image.image)
        if found is None:
            if len(self._targets) >= self.MEMORY:
                self._targets.clear()
            found = self._targets[image.image] = self._match(image)
        return found

    def _match(self, image: ContainerImage) -> tuple[tuple[Mirror, str], ...]:
        reference = image.reference
        if reference is None or already_mirrored(image, self.policy):
            return ()
        found: list[tuple[Mirror, str]] = []
        for rule in self.policy.mirrors:
            replaced = _matches(rule, reference.name, reference.domain)
            if replaced is None:
                continue
            rewritten = rule.mirror + reference.name[len(replaced) :]
            if reference.tag is not None:
                rewritten += ":" + reference.tag
            if reference.digest is not None:
                rewritten += "@" + reference.digest
            # e.g. the mirror's path makes the name too long: keep the image, say why
            found.append((rule, rewritten if _valid_name(rewritten) else ""))
        return tuple(found)


_ROUTES: dict[int, _Routes] = {}  # by id(policy): a policy lives until it is replaced by a reload


def _routes(policy: Policy) -> _Routes:
    routes = _ROUTES.get(id(policy))
    if routes is None or routes.policy is not policy:
        if len(_ROUTES) >= 8:  # reloads replace the policy: keep the few most recent
            _ROUTES.pop(next(iter(_ROUTES)))
        routes = _ROUTES[id(policy)] = _Routes(policy)
    return routes
