"""What the rest of the service may ask the cluster view. Implemented by the informer-backed `KubeClusterView`
(webhook/kube/informers.py) and by `StaticClusterView` (objects from files, for `pullguard check`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from policies.image.reference import InvalidReference
from policies.model import NodeFacts, SecretFacts, ServiceAccountFacts, pull_form


class ClusterView(Protocol):
    # False when Secrets that exist may be missing from the view (files given to `check`): an absent pull
    # secret is then unknown, not missing.
    secrets_complete: bool

    def synced(self) -> bool:
        """True once every cache has completed its first list (readiness)."""
        ...

    def secret(self, namespace: str, name: str) -> SecretFacts | None: ...

    def service_account(self, namespace: str, name: str) -> ServiceAccountFacts | None: ...

    def nodes(self) -> tuple[NodeFacts, ...]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The Namespace's labels (mirror rules select namespaces by them); None when the view has not got it."""
        ...

    async def confirm_secret(self, namespace: str, name: str) -> SecretFacts | None:
        """Ask the source itself about a Secret the cache does not have: a Secret applied together with the
        workload may not have reached the cache yet. Only on a miss, never on the common path."""
        ...


# Memory: the caches hold tens of thousands of these, and most of their strings repeat (namespaces, types, data
# keys, label keys and values, the images every node has pulled). Interned, each is held once.
_intern = sys.intern


def secret_facts(obj: Mapping[str, Any]) -> SecretFacts:
    metadata = obj.get("metadata") or {}
    data = obj.get("data") or {}
    return SecretFacts(
        namespace=_intern(str(metadata.get("namespace") or "default")),
        name=str(metadata.get("name") or ""),
        type=_intern(str(obj.get("type") or "Opaque")),
        data={_intern(str(k)): str(v) for k, v in data.items()} if isinstance(data, Mapping) else {},
    )


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # a copy of the object: never needed, often large


def service_account_facts(obj: Mapping[str, Any]) -> ServiceAccountFacts:
    metadata = obj.get("metadata") or {}
    secrets = obj.get("imagePullSecrets") or []
    annotations = metadata.get("annotations") or {}
    return ServiceAccountFacts(
        namespace=_intern(str(metadata.get("namespace") or "default")),
        name=str(metadata.get("name") or ""),
        image_pull_secrets=tuple(_intern(str(s["name"])) for s in secrets if isinstance(s, Mapping) and s.get("name")),
        annotations={_intern(str(k)): str(v) for k, v in annotations.items() if k != _LAST_APPLIED}
        if isinstance(annotations, Mapping)
        else {},
    )


def namespace_labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {_intern(str(k)): _intern(str(v)) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def node_facts(obj: Mapping[str, Any]) -> NodeFacts:
    """A Node in the API's JSON shape (camelCase), as `kubectl get node -o json` prints it."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions if isinstance(c, Mapping))
    images = status.get("images") or []
    names = {_pull_form(str(n)) for image in images if isinstance(image, Mapping) for n in (image.get("names") or [])}
    taints = spec.get("taints") or []
    info = status.get("nodeInfo") or {}
    runtime = info.get("containerRuntimeVersion") if isinstance(info, Mapping) else None
    return NodeFacts(
        name=str(metadata.get("name") or ""),
        labels={_intern(str(k)): _intern(str(v)) for k, v in (metadata.get("labels") or {}).items()},
        ready=ready,
        schedulable=not spec.get("unschedulable", False),
        images=frozenset(names),
        images_listed=len(images),
        taints=tuple(
            (_intern(str(t.get("key", ""))), _intern(str(t.get("value", ""))), _intern(str(t.get("effect", ""))))
            for t in taints
            if isinstance(t, Mapping)
        ),
        runtime=_intern(runtime) if isinstance(runtime, str) else "",
    )


_PULL_FORMS: dict[str, str] = {}  # status.images name -> its pull form, one string per distinct image
_PULL_FORMS_MAX = 200_000


def _pull_form(name: str) -> str:
    """Node status lists names as the runtime stores them; compare in the kubelet's pull form. Nodes mostly
    hold the same images: each distinct name is parsed once and its pull form shared by every node."""
    found = _PULL_FORMS.get(name)
    if found is not None:
        return found
    try:
        form = _intern(pull_form(name))
    except InvalidReference:
        form = _intern(name)  # e.g. a bare image ID: kept, it just never matches a reference
    if len(_PULL_FORMS) >= _PULL_FORMS_MAX:
        _PULL_FORMS.clear()  # a cache, bounded: what is cleared is parsed again
    _PULL_FORMS[name] = form
    return form


class StaticClusterView:
    """A cluster view made of objects (Secrets, ServiceAccounts, Nodes, Namespaces), e.g. found in `check`'s input
    files."""

    CLUSTER_KINDS = frozenset({"Secret", "ServiceAccount", "Node", "Namespace"})

    def __init__(self, objects: Iterable[Mapping[str, Any]], *, secrets_complete: bool = True) -> None:
        self.secrets_complete = secrets_complete
        self._secrets: dict[tuple[str, str], SecretFacts] = {}
        self._accounts: dict[tuple[str, str], ServiceAccountFacts] = {}
        self._namespaces: dict[str, Mapping[str, str]] = {}
        nodes: list[NodeFacts] = []
        for obj in objects:
            kind = obj.get("kind")
            if kind == "Secret":
                secret = secret_facts(obj)
                self._secrets[(secret.namespace, secret.name)] = secret
            elif kind == "ServiceAccount":
                account = service_account_facts(obj)
                self._accounts[(account.namespace, account.name)] = account
            elif kind == "Node":
                nodes.append(node_facts(obj))
            elif kind == "Namespace":
                self._namespaces[str((obj.get("metadata") or {}).get("name") or "")] = namespace_labels(obj)
        self._nodes = tuple(nodes)

    def synced(self) -> bool:
        return True

    def secret(self, namespace: str, name: str) -> SecretFacts | None:
        return self._secrets.get((namespace, name))

    def service_account(self, namespace: str, name: str) -> ServiceAccountFacts | None:
        return self._accounts.get((namespace, name))

    def nodes(self) -> tuple[NodeFacts, ...]:
        return self._nodes

    async def confirm_secret(self, namespace: str, name: str) -> SecretFacts | None:
        return self.secret(namespace, name)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespaces.get(namespace)
