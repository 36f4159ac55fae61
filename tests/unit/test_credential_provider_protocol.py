"""The exec protocol of the credential provider port: the request, the response, cache keys and durations,
and what a failure may quote of a plugin's stderr.

Tables marked "Go" were produced by the upstream code itself (Go 1.26, k8s.io/kubelet v0.37.2 and
k8s.io/apimachinery v0.37.2): the request through the kubelet's encoder (codecs.EncoderForVersion with the
JSON serializer), each response through json.DefaultMetaFactory.Interpret, the apiVersion comparison,
codecs.UniversalDecoder().Decode with serializer.EnableStrict and provide()'s cacheKeyType switch, as
pkg/credentialprovider/plugin/plugin.go chains them.
"""

from __future__ import annotations

import pytest

from policies.credential_providers import (
    GLOBAL_CACHE_KEY,
    CacheKeyType,
    ProviderResponseError,
    cache_key,
    cache_key_candidates,
    cache_seconds,
    describe_stderr,
    parse_response,
    request_body,
)
from tests.unit.credential_plugin_helpers import V1, exec_provider

# --- the request ----------------------------------------------------------------------------------


def test_request_bodies_are_byte_for_byte_the_kubelets() -> None:  # Go
    assert request_body(exec_provider(), "reg.example.com:5000/team/app") == (
        b'{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1",'
        b'"image":"reg.example.com:5000/team/app"}\n'
    )
    annotations = {"z.io/b": 'x"\\\n\t\b\f\x01\u00e9', "a.io/a": "1"}
    assert request_body(exec_provider(), "reg.example.com/a", "tok<&>\u2028", annotations) == (
        b'{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1",'
        b'"image":"reg.example.com/a","serviceAccountToken":"tok\\u003c\\u0026\\u003e\\u2028",'
        b'"serviceAccountAnnotations":{"a.io/a":"1","z.io/b":"x\\"\\\\\\n\\t\\b\\f\\u0001\xc3\xa9"}}\n'
    )
    assert request_body(exec_provider(), "reg.example.com/a", "", {}) == (
        b'{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1",'
        b'"image":"reg.example.com/a"}\n'
    )
    older = exec_provider(api_version="credentialprovider.kubelet.k8s.io/v1beta1")
    assert request_body(older, "reg.example.com/a", "tok", {"z.io/b": "x"}) == (
        b'{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1",'
        b'"image":"reg.example.com/a"}\n'
    )


# --- the response ---------------------------------------------------------------------------------

K, V = '"kind":"CredentialProviderResponse"', f'"apiVersion":"{V1}"'
AUTH = '"auth":{"a.io":{"username":"u","password":"s3cr3t-PASSWORD"}}'
# (stdout, the kubelet's outcome): "ok <cacheKeyType> <cacheDuration ns or nil> <auth entries>" or the error step
GO_RESPONSES = [
    (f'{{{K},{V},"cacheKeyType":"Image"}}', "ok Image nil 0"),
    (f'{{{K},{V},"cacheKeyType":"Registry","cacheDuration":"5m",{AUTH}}}', "ok Registry 300000000000 1"),
    (f'{{{K},{V},"cacheKeyType":"Global","cacheDuration":null,"auth":null}}', "ok Global nil 0"),
    (f'{{{K},{V},"cacheKeyType":"image",{AUTH}}}', "cacheKeyType"),
    (f"{{{K},{V}}}", "cacheKeyType"),
    (f'{{{K},{V},"cacheKeyType":null}}', "cacheKeyType"),
    (f'{{{K},"apiVersion":"{V1}beta1","cacheKeyType":"Image",{AUTH}}}', "apiVersion"),
    (f'{{{K},"cacheKeyType":"Image"}}', "apiVersion"),
    ("null", "apiVersion"),
    (f'{{{V},"cacheKeyType":"Image",{AUTH}}}', "decoding"),
    (f'{{"kind":"CredentialProviderRequest",{V},"image":"x"}}', "decoding"),
    (f'{{"kind":null,{V},"cacheKeyType":"Image"}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","extra":1,{AUTH}}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","CacheKeyType":"Image"}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","cacheKeyType":"Image"}}', "decoding"),
    (f'{{{K},"APIVERSION":"{V1}","cacheKeyType":"Image"}}', "decoding"),
    (f'{{{K},{V},"apiVersion":"x/v1","cacheKeyType":"Image"}}', "apiVersion"),
    (f'{{{K},"apiVersion":"x/v1",{V},"cacheKeyType":"Image"}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","cacheDuration":5}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","cacheDuration":"5"}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","cacheDuration":"-5s"}}', "ok Image -5000000000 0"),
    (f'{{{K},{V},"cacheKeyType":"Image","cacheDuration":"1h30m"}}', "ok Image 5400000000000 0"),
    (
        f'{{{K},{V},"cacheKeyType":"Image","auth":{{"a.io":{{"username":"u","password":"s3cr3t-PASSWORD","email":"e"}}}}}}',
        "decoding",
    ),
    (
        f'{{{K},{V},"cacheKeyType":"Image","auth":{{"a.io":{{"username":"u"}},"a.io":{{"username":"s3cr3t-PASSWORD"}}}}}}',
        "decoding",
    ),
    (f'{{{K},{V},"cacheKeyType":"Image","auth":{{"a.io":null}}}}', "ok Image nil 1"),
    (f'{{{K},{V},"cacheKeyType":"Image","auth":{{"a.io":{{"username":null,"password":"p"}}}}}}', "ok Image nil 1"),
    (f'{{{K},{V},"cacheKeyType":"Image","auth":{{"a.io":{{"username":1}}}}}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image","auth":[]}}', "decoding"),
    (f'{{{K},{V},"cacheKeyType":"Image"}} s3cr3t-PASSWORD', "GVK"),
    (f'{{{K},{V},"cacheKeyType":"Image"}}\n\n', "ok Image nil 0"),
    ("garbage s3cr3t-PASSWORD", "GVK"),
    ("", "GVK"),
    ("[]", "GVK"),
    ('{"apiVersion":"a/b/c"}', "GVK"),
    ('{"apiVersion":5}', "GVK"),
    (f"kind: CredentialProviderResponse\napiVersion: {V1}\ncacheKeyType: Image\n", "GVK"),
]


@pytest.mark.parametrize(("stdout", "outcome"), GO_RESPONSES)
def test_responses_decode_as_the_kubelet_decodes_them(stdout: str, outcome: str) -> None:  # Go
    if outcome.startswith("ok "):
        response = parse_response(exec_provider(), stdout.encode())
        duration = "nil" if response.cache_duration is None else str(response.cache_duration)
        assert f"ok {response.cache_key_type.value} {duration} {len(response.auth)}" == outcome
        assert "s3cr3t" not in repr(response)
        return
    with pytest.raises(ProviderResponseError) as caught:
        parse_response(exec_provider(), stdout.encode())
    step = {
        "GVK": "error reading GVK from response",
        "apiVersion": "apiVersion from credential plugin response did not match expected apiVersion:",
        "decoding": "error decoding credential provider plugin response from stdout",
        "cacheKeyType": "credential provider plugin did not return a valid cacheKeyType",
    }[outcome]
    assert str(caught.value).startswith(step)
    # nothing of the answer is kept: not in the text, not down the exception chain
    error: BaseException | None = caught.value
    while error is not None:
        assert "s3cr3t" not in str(error) and "s3cr3t" not in repr(error.args)
        error = error.__cause__ or error.__context__


def test_auth_entries_and_an_unknown_api_version_are_not_repeated() -> None:
    response = parse_response(exec_provider(), f'{{{K},{V},"cacheKeyType":"Registry",{AUTH}}}'.encode())
    assert response.auth["a.io"].username == "u" and response.auth["a.io"].password == "s3cr3t-PASSWORD"
    with pytest.raises(ProviderResponseError, match=r"actual apiVersion:\(unrecognized, not shown\)$"):
        parse_response(exec_provider(), b'{"apiVersion":"s3cr3t/v1"}')
    with pytest.raises(ProviderResponseError, match=r"actual apiVersion:credentialprovider.kubelet.k8s.io/v1beta1$"):
        parse_response(exec_provider(), f'{{"apiVersion":"{V1}beta1"}}'.encode())
    with pytest.raises(ProviderResponseError, match=r"cacheKeyType: \(not shown\)"):
        parse_response(exec_provider(), f'{{{K},{V},"cacheKeyType":"s3cr3t"}}'.encode())
    with pytest.raises(ProviderResponseError, match="larger than 1 MiB"):
        parse_response(exec_provider(), b" " * (1024 * 1024 + 1))


def test_an_echoed_service_account_token_is_refused_unless_cached_per_token() -> None:
    echo = f'{{{K},{V},"cacheKeyType":"Bogus","auth":{{"a.io":{{"username":"","password":"the-token"}}}}}}'.encode()
    per_account = exec_provider(serviceAccountTokenAudience="aud", cacheType="ServiceAccount")
    with pytest.raises(ProviderResponseError, match="returned the service account token as the password"):
        parse_response(per_account, echo, "the-token")  # checked before cacheKeyType, as provide() does
    per_token = exec_provider(serviceAccountTokenAudience="aud", cacheType="Token")
    ok = echo.replace(b"Bogus", b"Image")
    assert parse_response(per_token, ok, "the-token").auth["a.io"].password == "the-token"
    assert parse_response(per_account, ok, "another-token").cache_key_type is CacheKeyType.IMAGE


# --- cache keys, durations and stderr -------------------------------------------------------------


def test_cache_keys_follow_the_cache_key_type() -> None:
    image = "registry.example.com:5000/team/app"
    assert cache_key(CacheKeyType.IMAGE, image) == image
    assert cache_key(CacheKeyType.REGISTRY, image) == "registry.example.com:5000"
    assert cache_key(CacheKeyType.GLOBAL, image) == GLOBAL_CACHE_KEY == "<global>"
    assert cache_key_candidates(image) == (image, "registry.example.com:5000", "<global>")


def test_cache_duration_falls_back_to_the_default() -> None:
    with_default, no_default = exec_provider(default="90s"), exec_provider(default="0s")
    body = f'{{{K},{V},"cacheKeyType":"Image"'
    assert cache_seconds(with_default, parse_response(with_default, (body + "}").encode())) == 90
    assert cache_seconds(no_default, parse_response(no_default, (body + "}").encode())) is None
    explicit = (body + ',"cacheDuration":"0s"}').encode()
    assert cache_seconds(with_default, parse_response(with_default, explicit)) is None
    assert cache_seconds(no_default, parse_response(no_default, explicit.replace(b'"0s"', b'"2m"'))) == 120


@pytest.mark.parametrize(
    ("stderr", "shown"),
    [
        (b"\n\n  access denied for role x\nmore\n", "access denied for role x"),
        (b"login failed: password=hunter2 user=bob", "login failed: password=<redacted> user=bob"),
        (b'{"token": "abc"}', '{"token": <redacted>}'),
        (b"Authorization: Bearer abc.def", "Authorization: <redacted>"),
        (b"got key AKIAIOSFODNN7EXAMPLE1234567890 back", "got key <redacted> back"),
        (b"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig here", "jwt <redacted> here"),
        (b"bad\x1b[31m colour\x00", "bad[31m colour"),
        (b"x" * 500, "x" * 197 + "..."),
        (
            b"host 123456789012.dkr.ecr.us-east-1.amazonaws.com unreachable",
            "host 123456789012.dkr.ecr.us-east-1.amazonaws.com unreachable",
        ),
    ],
)
def test_stderr_is_quoted_without_credentials(stderr: bytes, shown: str) -> None:
    assert describe_stderr(stderr) == shown


def test_stderr_never_repeats_a_known_secret() -> None:
    assert describe_stderr(b"token sa-token-value rejected", ["sa-token-value"]) == "token <redacted> rejected"
