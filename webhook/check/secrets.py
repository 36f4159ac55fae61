"""Pull secrets that `pullguard check` cannot see.

Without a live cluster (--kubeconfig) or input declared complete (--complete-input), a pull secret absent from
the input is unknown, not missing: pull secrets are rarely kept in git. The view says so
(`ClusterFacts.secrets_complete`), and the pullSecrets check turns what depends on such a secret into "could not
verify". This module only counts them, for the report's summary.
"""

from __future__ import annotations

from policies.credentials import pull_secret_names
from policies.model import ClusterFacts, PodContext


def unverifiable(pod: PodContext, cluster: ClusterFacts) -> tuple[str, ...]:
    """The pull secrets the kubelet would use for this pod that the input does not hold. Without any cluster
    view even the ServiceAccount is unknown, so only the pod's own list can be named."""
    if not cluster.known:
        return tuple(dict.fromkeys(pod.image_pull_secrets))
    names = pull_secret_names(pod, cluster.service_account)
    return tuple(name for name in dict.fromkeys(names) if cluster.secrets.get(name) is None)
