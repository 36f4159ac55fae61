"""The cluster view's transforms share repeated strings: thousands of cached objects hold one copy each."""

from __future__ import annotations

from webhook.kube import view
from webhook.kube.view import node_facts, secret_facts, service_account_facts


def _node(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": "amd64", "pool": "general"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [
                {"names": ["nginx:1.27", "docker.io/library/nginx@sha256:" + "a" * 64]},
                {"names": ["sha256:x"]},
            ],
        },
    }


def test_nodes_share_image_names_and_labels() -> None:
    first, second = node_facts(_node("a")), node_facts(_node("b"))
    assert (
        first.images
        == second.images
        == {
            "docker.io/library/nginx:1.27",
            "docker.io/library/nginx@sha256:" + "a" * 64,
            "docker.io/library/sha256:x",  # a name, in pull form like any other
        }
    )
    for image in first.images:
        (twin,) = [other for other in second.images if other == image]
        assert twin is image
    for (k1, v1), (k2, v2) in zip(first.labels.items(), second.labels.items(), strict=True):
        assert k1 is k2 and v1 is v2


def test_pull_form_cache_is_bounded() -> None:
    view._PULL_FORMS.clear()
    limit = view._PULL_FORMS_MAX
    try:
        view._PULL_FORMS_MAX = 3
        for i in range(10):
            assert view._pull_form(f"registry.example/app:{i}") == f"registry.example/app:{i}"
            assert len(view._PULL_FORMS) <= 3
    finally:
        view._PULL_FORMS_MAX = limit
        view._PULL_FORMS.clear()


def test_secrets_and_accounts_share_namespaces_and_keys() -> None:
    one = secret_facts({"metadata": {"namespace": "team-" + "a", "name": "s1"}, "type": "kubernetes.io/dockercfg",
                        "data": {".dockercfg": "e30="}})  # fmt: skip
    two = secret_facts({"metadata": {"namespace": "".join(["team-", "a"]), "name": "s2"},
                        "type": "kubernetes.io/dockercfg", "data": {"".join([".docker", "cfg"]): "e30="}})  # fmt: skip
    assert one.namespace is two.namespace and next(iter(one.data)) is next(iter(two.data))
    account = service_account_facts(
        {"metadata": {"namespace": "".join(["team-", "a"]), "name": "sa"}, "imagePullSecrets": [{"name": "s1"}]}
    )
    assert account.namespace is one.namespace and account.image_pull_secrets == ("s1",)
