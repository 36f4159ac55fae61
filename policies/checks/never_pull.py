"""`neverPull`: with `imagePullPolicy: Never` the kubelet only runs what the node already has; an image absent
from every node the pod may land on ends in ErrImageNeverPull.

Node status lists at most 50 images by default (the kubelet's --node-status-max-images): a node with a full
list may have the image without saying so, so such nodes make the answer "cannot confirm", never a denial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from policies.checks.spec import CheckSpec, RuleText
from policies.model import CheckName, ContainerImage, Facts, Finding, Gap, NodeFacts, Reason
from policies.render import node_names
from policies.scheduling import candidate_nodes, lists_full

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.NEVER_PULL
HINT = (
    "import it into containerd's k8s.io namespace on each node (ctr -n k8s.io images import; docker load is not "
    "enough), or set imagePullPolicy: IfNotPresent"
)


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    if image.effective_pull_policy != "Never" or image.reference is None or not facts.cluster.known:
        return ()
    nodes = candidate_nodes(image.pod, facts.cluster.nodes)
    if not nodes:
        return ()
    wanted = image.pull_reference or image.image
    having = [n for n in nodes if wanted in n.images]
    if having == nodes:
        return ()
    lacking = [n for n in nodes if n not in having]
    full = [n for n in lacking if lists_full(n, policy.kubelet.node_status_max_images)]
    if not having and not full:
        if image.pod.node_name:
            where = f"is not on node {nodes[0].name}, where the pod is bound"
        else:
            where = f"is on none of the {_count(nodes)} it may run on"
        message = f"{image.label} has imagePullPolicy Never and {where}"
        names = tuple(n.name for n in nodes)
        return (Finding(NAME, image, Reason.ERR_IMAGE_NEVER_PULL, message, HINT, nodes=names),)
    if not having:
        message = (
            f"{image.label} has imagePullPolicy Never; cannot confirm it is on any node "
            f"({node_names([n.name for n in full])} list the maximum of {policy.kubelet.node_status_max_images} images)"
        )
        names = tuple(n.name for n in full)
        return (Finding(NAME, image, Reason.ERR_IMAGE_NEVER_PULL, message, HINT, unknown=True, nodes=names),)
    missing = tuple(n.name for n in lacking)
    message = f"{image.label} has imagePullPolicy Never and is missing on {node_names(missing)}"
    hint = "import it there too, or pin the pod to " + node_names([n.name for n in having])
    return (Finding(NAME, image, Reason.ERR_IMAGE_NEVER_PULL, message, hint, advisory=True, nodes=missing),)


def blind(image: ContainerImage, facts: Facts) -> Gap | None:
    """Which images a node holds is only known from Nodes the pod may run on."""
    if image.effective_pull_policy != "Never" or image.reference is None:
        return None
    if not facts.cluster.known:
        return Gap.NO_CLUSTER
    return None if candidate_nodes(image.pod, facts.cluster.nodes) else Gap.NO_NODES


def _count(nodes: Sequence[NodeFacts]) -> str:
    return f"{len(nodes)} node" + ("s" if len(nodes) != 1 else "")


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=False,
    blind=blind,
    rule=RuleText(
        "With imagePullPolicy Never, the image is on the nodes",
        "With imagePullPolicy: Never the kubelet runs only images already on the node (Node status.images); "
        "an absent one ends in ErrImageNeverPull.",
        "Import the image into containerd's k8s.io namespace on each node (ctr -n k8s.io images import), or "
        "set imagePullPolicy: IfNotPresent.",
    ),
)
