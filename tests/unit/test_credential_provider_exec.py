"""webhook.node.credential_providers with real plugin executables: what is asked, what is cached, what is
merged, and how a plugin that fails, hangs or floods is bounded. No subprocess is mocked."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import pytest

from policies.credential_providers import ProviderConfigError, request_body
from policies.model import PodContext
from tests.unit.credential_plugin_helpers import (
    GENEROUS,
    Clock,
    Plugin,
    alive,
    pids_of,
    responder,
    response,
    wait_until,
    write_config,
)
from webhook.node.credential_providers import (
    FAILURE_CACHE_SECONDS,
    CredentialProviders,
    ProviderCredentials,
    ProviderFailure,
)

POD = PodContext(namespace="team", service_account="builder")
IMAGE = "registry.example.com/team/app"
AUTH = {"registry.example.com": ("robot", "s3cr3t")}


def providers(tmp_path: Path, *specs: dict[str, object], **options: object) -> CredentialProviders:
    config = write_config(tmp_path / "credential-providers.json", *specs)
    return CredentialProviders.load(config, tmp_path / "bin", **options)  # type: ignore[arg-type]


async def ask(cp: CredentialProviders, image: str = IMAGE, budget: float = GENEROUS) -> ProviderCredentials:
    return await cp.credentials(image, POD, budget_seconds=budget)


async def test_a_plugin_gives_the_node_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = responder('printf "%s|%s|%s\\n" "$2" "$INHERITED" "$OVERRIDDEN" > "$1/seen"\n')
    plugin = Plugin(tmp_path, tmp_path / "bin", "ecr", script)
    plugin.answer(response("Image", "5m", AUTH))
    monkeypatch.setenv("INHERITED", "from-pullguard")
    monkeypatch.setenv("OVERRIDDEN", "from-pullguard")
    spec = plugin.spec(args=["--extra"], env=[("OVERRIDDEN", "first"), ("OVERRIDDEN", "from-config")])
    cp = providers(tmp_path, spec)
    found = await ask(cp)
    (credential,) = found.credentials
    assert (credential.username, credential.password) == ("robot", "s3cr3t")
    assert credential.origin == "credential provider ecr"
    assert credential.source is not None and credential.source.registry_key == "registry.example.com"
    assert found.failures == () and found.asked == ("ecr",)
    # the request on stdin is byte for byte the kubelet's; args are passed; the provider's env wins
    assert plugin.request_lines() == [request_body(cp.providers[0], IMAGE)]
    assert (plugin.dir / "seen").read_text() == "--extra|from-pullguard|from-config\n"
    assert "s3cr3t" not in repr(found)


async def test_images_that_no_provider_matches_ask_nobody(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p")
    plugin.answer(response(auth=AUTH))
    cp = providers(tmp_path, plugin.spec(["*.example.com:5000", "registry.example.com/other"]))
    assert cp.matching(IMAGE) == ()
    assert await ask(cp) == ProviderCredentials()
    assert plugin.execs == 0
    assert cp.matching("a.example.com:5000/x") == ("p",)


@pytest.mark.parametrize(
    ("key_type", "second", "execs"),
    [
        ("Image", "registry.example.com/team/other", 2),  # another image: asked again
        ("Registry", "registry.example.com/team/other", 1),  # same registry: cached
        ("Registry", "registry.example.com:5000/x", 2),  # host and port make the registry
        ("Global", "mirror.example.com/x", 1),  # anything the plugin matches
    ],
)
async def test_answers_are_cached_by_their_cache_key_type(
    tmp_path: Path, key_type: str, second: str, execs: int
) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p")
    plugin.answer(response(key_type, "1m", {"*.example.com": ("u", "p"), "*.example.com:5000": ("u", "p")}))
    clock = Clock()
    cp = providers(tmp_path, plugin.spec(["*.example.com", "*.example.com:5000"]), clock=clock)
    assert len((await ask(cp)).credentials) == 1
    assert len((await ask(cp, second)).credentials) == 1
    assert plugin.execs == execs
    assert len((await ask(cp)).credentials) == 1  # the first image is still cached
    assert plugin.execs == execs
    clock.now += 60  # expiresAt is still valid (the kubelet's Now().After(expiresAt))
    await ask(cp)
    assert plugin.execs == execs
    clock.now += 0.5
    await ask(cp)
    assert plugin.execs == execs + 1


@pytest.mark.parametrize(
    ("default", "duration", "cached_for"),
    [
        ("30s", None, 30.0),  # no cacheDuration: defaultCacheDuration
        ("30s", "0s", None),  # cacheDuration 0: never cached
        ("0s", None, None),  # neither: never cached
        ("0s", "2m", 120.0),
        ("30s", "-1s", None),  # already expired when stored
    ],
)
async def test_cache_durations(tmp_path: Path, default: str, duration: str | None, cached_for: float | None) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p")
    plugin.answer(response("Image", duration, AUTH))
    clock = Clock()
    cp = providers(tmp_path, plugin.spec(default=default), clock=clock)
    await ask(cp)
    await ask(cp)
    if cached_for is None:
        assert plugin.execs == 2
        return
    assert plugin.execs == 1
    clock.now += cached_for + 1
    await ask(cp)
    assert plugin.execs == 2


async def test_concurrent_reviews_share_one_exec(tmp_path: Path) -> None:
    script = responder("sleep 0.3\n")
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", script)
    plugin.answer(response("Image", "0s", AUTH))  # not cached: only the singleflight can share it
    cp = providers(tmp_path, plugin.spec())
    results = await asyncio.gather(*(ask(cp) for _ in range(8)))
    assert all(len(r.credentials) == 1 for r in results)
    assert plugin.execs == 1
    await ask(cp)
    assert plugin.execs == 2


async def test_two_providers_add_into_one_keyring(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    first, second = Plugin(tmp_path, bin_dir, "first"), Plugin(tmp_path, bin_dir, "second")
    first.answer(response(auth={"*.example.com": ("first-wild", "a"), "registry.example.com": ("first-exact", "b")}))
    second.answer(response(auth={"registry.example.com": ("second-exact", "c"), "other.io": ("unrelated", "d")}))
    cp = providers(tmp_path, first.spec(["*.example.com"]), second.spec())
    found = await ask(cp)
    # BasicDockerKeyring: the most specific key first, and under one key the providers in config order
    assert [c.username for c in found.credentials] == ["first-exact", "second-exact", "first-wild"]
    assert [c.origin for c in found.credentials] == [
        "credential provider first",
        "credential provider second",
        "credential provider first",
    ]
    assert found.asked == ("first", "second")


FAILING = {
    "exits 1": ("#!/bin/sh\necho 'denied: password=hunter2 for robot' >&2\nexit 3\n", "exited with status 3: denied"),
    "garbage": ("#!/bin/sh\necho 'not json s3cr3t'\n", "error reading GVK from response"),
    "wrong apiVersion": (
        '#!/bin/sh\necho \'{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/'
        'v1beta1","cacheKeyType":"Image","auth":{"registry.example.com":{"username":"u","password":"s3cr3t"}}}\'\n',
        "apiVersion from credential plugin response did not match expected apiVersion",
    ),
    "killed": ("#!/bin/sh\nkill -9 $$\n", "was killed by signal 9"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
async def test_a_failing_plugin_is_a_failure_that_names_it(tmp_path: Path, case: str) -> None:
    script, detail = FAILING[case]
    cp = providers(tmp_path, Plugin(tmp_path, tmp_path / "bin", "broken", script).spec())
    found = await ask(cp)
    assert found.credentials == () and found.asked == ("broken",)
    (failure,) = found.failures
    assert failure.provider == "broken" and failure.detail.startswith(detail)
    assert "hunter2" not in failure.detail and "s3cr3t" not in failure.detail and "not json" not in failure.detail


async def test_values_the_config_gives_the_plugin_are_never_echoed(tmp_path: Path) -> None:
    script = '#!/bin/sh\necho "login failed with key $API_KEY" >&2\nexit 1\n'
    spec = Plugin(tmp_path, tmp_path / "bin", "p", script).spec(env=[("API_KEY", "Zq9-very-secret-key")])
    (failure,) = (await ask(providers(tmp_path, spec))).failures
    assert failure.detail.startswith("exited with status 1: login failed with key")
    assert "Zq9-very-secret-key" not in failure.detail


async def test_failures_are_remembered_briefly(tmp_path: Path) -> None:
    script = "#!/bin/sh\necho x >> \"$1/requests\"\necho 'no credentials today' >&2\nexit 1\n"
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", script)
    clock = Clock()
    cp = providers(tmp_path, plugin.spec(), clock=clock)
    first = await ask(cp)
    assert first.failures == (ProviderFailure("p", "exited with status 1: no credentials today"),)
    assert (await ask(cp)).failures == first.failures
    assert plugin.execs == 1  # an exec storm is avoided
    clock.now += FAILURE_CACHE_SECONDS + 1
    await ask(cp)
    assert plugin.execs == 2


async def test_a_missing_or_unusable_binary_is_that_providers_failure(tmp_path: Path) -> None:
    missing = Plugin(tmp_path, tmp_path / "elsewhere", "missing")  # its binary is not in the bin dir
    not_executable = Plugin(tmp_path, tmp_path / "bin", "noexec")
    (tmp_path / "bin" / "noexec").chmod(0o644)
    cp = providers(tmp_path, missing.spec(), not_executable.spec())  # loading does not look for binaries
    found = await ask(cp)
    assert [f.provider for f in found.failures] == ["missing", "noexec"]
    assert found.failures[0].detail == f"its binary {tmp_path / 'bin' / 'missing'} does not exist"
    assert found.failures[1].detail == f"its binary {tmp_path / 'bin' / 'noexec'} is not executable"


HANGING = '#!/bin/sh\necho $$ > "$1/pid"\nsleep 1000 &\necho $! > "$1/child"\nwait\n'


async def test_a_hanging_plugin_costs_the_review_only_its_budget(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", HANGING)
    cp = providers(tmp_path, plugin.spec(), exec_timeout=GENEROUS * 10)
    started = asyncio.get_running_loop().time()
    found = await ask(cp, budget=0.5)
    assert asyncio.get_running_loop().time() - started < GENEROUS  # far below the exec's own ceiling
    assert found.failures[0].detail.startswith("did not answer within the review's budget of 0.5 s")
    pids = await pids_of(plugin.dir, "pid", "child")
    assert all(alive(pid) for pid in pids)  # still running, shielded, to fill the cache later
    again = await ask(cp, budget=0.1)  # joins the same exec rather than starting another
    assert again.failures[0].detail.startswith("did not answer")
    await cp.aclose()
    await wait_until(lambda: not any(alive(pid) for pid in pids))


async def test_a_hanging_plugin_is_killed_at_the_exec_ceiling(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", HANGING)
    cp = providers(tmp_path, plugin.spec(), exec_timeout=1.0)
    found = await ask(cp)
    assert found.failures == (ProviderFailure("p", "did not finish within 1 s and was killed"),)
    pids = await pids_of(plugin.dir, "pid", "child")
    await wait_until(lambda: not any(alive(pid) for pid in pids))  # the whole process group


async def test_a_flooding_plugin_is_stopped_at_the_cap(tmp_path: Path) -> None:
    script = "#!/bin/sh\necho $$ > \"$1/pid\"\nhead -c 52428800 /dev/zero | tr '\\0' a\n"
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", script)
    cp = providers(tmp_path, plugin.spec())
    tracemalloc.start()
    try:
        found = await ask(cp)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.failures == (ProviderFailure("p", "printed more than 1 MiB and was killed"),)
    assert peak < 8 * 1024 * 1024  # bounded: the cap plus a few chunks, never 50 MB
    (pid,) = await pids_of(plugin.dir, "pid")
    await wait_until(lambda: not alive(pid))


async def test_an_exec_past_the_budget_still_fills_the_cache(tmp_path: Path) -> None:
    script = responder("sleep 1\n")
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", script)
    plugin.answer(response("Registry", "5m", AUTH))
    cp = providers(tmp_path, plugin.spec())
    assert (await ask(cp, budget=0.05)).failures[0].detail.startswith("did not answer")
    await wait_until(lambda: plugin.execs == 1)
    await wait_until(lambda: not cp._plugins[0].in_flight)
    found = await ask(cp, "registry.example.com/another", budget=0.05)
    assert len(found.credentials) == 1 and found.failures == ()
    assert plugin.execs == 1


async def test_load_reads_a_file_or_a_directory(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p")
    config_dir = tmp_path / "conf.d"
    config_dir.mkdir()
    write_config(config_dir / "b.yaml", {**plugin.spec(), "name": "second"})
    write_config(config_dir / "a.json", plugin.spec())
    (config_dir / "notes.txt").write_text("ignored")
    cp = CredentialProviders.load(config_dir, tmp_path / "bin")
    assert [p.name for p in cp.providers] == ["p", "second"]
    with pytest.raises(ProviderConfigError, match=f"^{tmp_path / 'absent.yaml'}: unable to read"):
        CredentialProviders.load(tmp_path / "absent.yaml", tmp_path / "bin")
    (tmp_path / "empty.d").mkdir()
    with pytest.raises(ProviderConfigError, match="no configuration files found in directory"):
        CredentialProviders.load(tmp_path / "empty.d", tmp_path / "bin")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig"}))
    with pytest.raises(ProviderConfigError, match=f"{bad}: providers: Required value"):
        CredentialProviders.load(bad, tmp_path / "bin")
