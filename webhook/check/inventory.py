"""`pullguard check` accounts for every object it reads: a workload to check, an object for the cluster view, or
skipped with the reason (excluded namespace, a kind that makes no pods, a kind pullguard cannot read pods from,
an unreadable file or object)."""

from __future__ import annotations

from typing import Any

from policies.config import Policy
from policies.plan import Side, Skip, scope
from webhook.formats.report import Inventory, Skipped
from webhook.kube.view import StaticClusterView
from webhook.review.workloads import MalformedObjectError, extract, is_workload
from webhook.util.manifests import Manifests

# Built-in kinds that never make pods, by API group. A kind in another group (a Knative `Service`, an Argo
# `Rollout`) may well make pods that pullguard cannot see: it is skipped as unknown, never as harmless.
_NO_PODS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "ConfigMap",
            "Secret",
            "Service",
            "ServiceAccount",
            "Namespace",
            "Node",
            "Endpoints",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "LimitRange",
            "ResourceQuota",
            "Event",
        }
    ),
    "apps": frozenset({"ControllerRevision"}),
    "networking.k8s.io": frozenset({"Ingress", "IngressClass", "NetworkPolicy"}),
    "rbac.authorization.k8s.io": frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}),
    "policy": frozenset({"PodDisruptionBudget"}),
    "autoscaling": frozenset({"HorizontalPodAutoscaler"}),
    "storage.k8s.io": frozenset({"StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"}),
    "apiextensions.k8s.io": frozenset({"CustomResourceDefinition"}),
    "admissionregistration.k8s.io": frozenset(
        {
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
    ),
    "scheduling.k8s.io": frozenset({"PriorityClass"}),
    "coordination.k8s.io": frozenset({"Lease"}),
    "discovery.k8s.io": frozenset({"EndpointSlice"}),
    "certificates.k8s.io": frozenset({"CertificateSigningRequest"}),
    "node.k8s.io": frozenset({"RuntimeClass"}),
    "apiregistration.k8s.io": frozenset({"APIService"}),
}
_ANY_GROUP = frozenset().union(*_NO_PODS.values())
_NAMESPACED_CLUSTER_KINDS = frozenset({"Secret", "ServiceAccount"})


def take_stock(
    manifests: Manifests, policy: Policy, live_cluster: bool, default_namespace: str = "default"
) -> Inventory:
    """`live_cluster`: the cluster view comes from --kubeconfig, so Secrets etc. in the input are not used.
    `default_namespace`: where objects that name none go (`check --namespace`, as `kubectl apply -n`)."""
    stock = Inventory()
    stock.skipped += [Skipped(u.source, u.line, None, None, None, u.reason, error=True) for u in manifests.unreadable]
    for doc in manifests.documents:
        kind = doc.body.get("kind")
        metadata = doc.body.get("metadata")
        meta = metadata if isinstance(metadata, dict) else {}
        namespace, name = _text(meta.get("namespace")), _text(meta.get("name") or meta.get("generateName"))
        given = namespace is not None
        if not isinstance(kind, str) or not kind:
            reason = "no kind: not a Kubernetes object"
            stock.skipped.append(Skipped(doc.source, doc.line, None, namespace, name, reason))
        elif is_workload(kind):
            try:
                workload = extract(kind, doc.body, "" if given else default_namespace)
            except MalformedObjectError as exc:
                stock.skipped.append(Skipped(doc.source, doc.line, kind, namespace, name, f"{kind}: {exc}", error=True))
                continue
            if scope(workload, policy, Side.VALIDATE) is Skip.EXCLUDED:  # the review would skip it: say so here
                reason = f"namespace {workload.namespace} is excluded by the policy (excludeNamespaces)"
                stock.skipped.append(Skipped(doc.source, doc.line, kind, workload.namespace, workload.name, reason))
            else:
                stock.workloads.append((doc, workload))
        elif kind in StaticClusterView.CLUSTER_KINDS and not live_cluster:
            body = doc.body
            if not given and kind in _NAMESPACED_CLUSTER_KINDS:
                body = {**body, "metadata": {**meta, "namespace": default_namespace}}
            stock.cluster_objects.append(body)
        else:
            reason = _no_pods_reason(kind, _text(doc.body.get("apiVersion")), live_cluster)
            stock.skipped.append(Skipped(doc.source, doc.line, kind, namespace, name, reason))
    return stock


def _no_pods_reason(kind: str, api_version: str | None, live_cluster: bool) -> str:
    group = api_version.rpartition("/")[0] if api_version else None
    known = kind in _NO_PODS.get(group, frozenset()) if group is not None else kind in _ANY_GROUP
    if not known:
        where = f" ({api_version})" if group else ""
        return f"kind {kind} is not a kind pullguard knows how to read pods from{where}"
    if kind in StaticClusterView.CLUSTER_KINDS and live_cluster:
        return f"kind {kind} makes no pods (the cluster view is the live cluster, from --kubeconfig)"
    return f"kind {kind} makes no pods"


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
