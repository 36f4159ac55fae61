"""The credential provider config as the kubelet reads it (pkg/credentialprovider/plugin/config.go:
readCredentialProviderConfig, validateCredentialProviderConfig), Go durations and matchImages.

The duration tables are Go's own src/time/time_test.go parseDurationTests and parseDurationErrorTests; the
matchImages cases follow the examples of k8s.io/kubelet config/v1 types.go (CredentialProvider.MatchImages).
The protocol (request, response, cache keys) is tested in test_credential_provider_protocol.py.
"""

from __future__ import annotations

import json

import pytest

from policies.credential_providers import (
    ExecProvider,
    ProviderConfigError,
    TokenCacheType,
    parse_provider_config,
    parse_provider_configs,
)
from policies.go_duration import parse_duration
from policies.image.k8s_decode import DecodeError, Obj, kind_of, load_document
from tests.unit.credential_plugin_helpers import V1, exec_provider

GOOD = """\
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "registry.example.com:5000/team"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials, --verbose]
    env:
      - {name: AWS_PROFILE, value: hidden-value}
  - name: token-provider
    matchImages: ["tokens.example.com"]
    defaultCacheDuration: 0s
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes:
      serviceAccountTokenAudience: registry.example.com
      requireServiceAccount: true
      cacheType: ServiceAccount
      requiredServiceAccountAnnotationKeys: [example.com/role]
      optionalServiceAccountAnnotationKeys: [example.com/Team]
"""


# --- the config file ----------------------------------------------------------------------------


def test_a_good_file_is_read_as_the_kubelet_reads_it() -> None:
    ecr, tokens = parse_provider_config(GOOD, "/etc/kubernetes/credential-providers.yaml")
    assert ecr.name == "ecr-credential-provider"
    assert ecr.match_images == ("*.dkr.ecr.*.amazonaws.com", "registry.example.com:5000/team")
    assert ecr.default_cache_duration == 12 * 3600 * 10**9
    assert ecr.args == ("get-credentials", "--verbose")
    assert ecr.env == (("AWS_PROFILE", "hidden-value"),)
    assert ecr.token_attributes is None
    assert "hidden-value" not in repr(ecr)  # env values may be secrets
    attributes = tokens.token_attributes
    assert attributes is not None
    assert attributes.audience == "registry.example.com"
    assert attributes.cache_type is TokenCacheType.SERVICE_ACCOUNT
    assert attributes.required_annotation_keys == ("example.com/role",)
    assert attributes.optional_annotation_keys == ("example.com/Team",)
    assert tokens.default_cache_duration == 0


def test_json_and_older_config_versions_are_accepted() -> None:
    for version in ("v1", "v1beta1", "v1alpha1"):
        doc = {
            "apiVersion": f"kubelet.config.k8s.io/{version}",
            "kind": "CredentialProviderConfig",
            "providers": [
                {"name": "p", "matchImages": ["a.io"], "defaultCacheDuration": "1m", "apiVersion": V1 + "beta1"}
            ],
        }
        (only,) = parse_provider_config(json.dumps(doc), "c.json")
        assert only.api_version == "credentialprovider.kubelet.k8s.io/v1beta1"


def test_a_directory_is_merged_in_order_and_names_stay_unique() -> None:
    second = GOOD.replace("ecr-credential-provider", "other").replace("token-provider", "other-token")
    names = [p.name for p in parse_provider_configs([("a.yaml", GOOD), ("b.yaml", second)])]
    assert names == ["ecr-credential-provider", "token-provider", "other", "other-token"]
    with pytest.raises(ProviderConfigError, match=r"b\.yaml: providers\[0\]\.name: duplicate provider name"):
        parse_provider_configs([("a.yaml", GOOD), ("b.yaml", GOOD)])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("name: token-provider", "name: a/b"), r"providers\[1\]\.name: Invalid value: \"a/b\": .*cannot contain '/'"),
        (("name: token-provider", "name: 'a b'"), r"providers\[1\]\.name: .*cannot contain spaces"),
        (("name: token-provider", "name: '..'"), r"providers\[1\]\.name: .*cannot be '\.\.'"),
        (("name: token-provider", "name: ''"), r"providers\[1\]\.name: Required value"),
        (("name: token-provider", "name: ecr-credential-provider"), r"providers\[1\]\.name: duplicate provider name"),
        (('["tokens.example.com"]', "[]"), r"providers\[1\]\.matchImages: Required value"),
        (('["tokens.example.com"]', '["a.io:port"]'), r"providers\[1\]\.matchImages\[0\]: .*match image is invalid"),
        (("defaultCacheDuration: 0s", "defaultCacheDuration: -1s"), r"defaultCacheDuration: .*greater than or equal"),
        (("    defaultCacheDuration: 0s\n", ""), r"providers\[1\]\.defaultCacheDuration: Required value"),
        (("defaultCacheDuration: 0s", "defaultCacheDuration: 0"), r"defaultCacheDuration: expected a string"),
        (("defaultCacheDuration: 0s", "defaultCacheDuration: 1d"), r"defaultCacheDuration: time: unknown unit"),
        (
            ("    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    tokenAttributes", "    tokenAttributes"),
            r"providers\[1\]\.apiVersion: Required value",
        ),
        (
            ("kubelet.k8s.io/v1\n    tokenAttributes", "kubelet.k8s.io/v2\n    tokenAttributes"),
            r"providers\[1\]\.apiVersion: Unsupported value",
        ),
        (
            ("kubelet.k8s.io/v1\n    tokenAttributes", "kubelet.k8s.io/v1beta1\n    tokenAttributes"),
            r"providers\[1\]\.tokenAttributes: Forbidden: tokenAttributes is only supported",
        ),
        (
            ("serviceAccountTokenAudience: registry.example.com", "serviceAccountTokenAudience: ''"),
            r"tokenAttributes\.serviceAccountTokenAudience: Required value",
        ),
        (("requireServiceAccount: true", "requireServiceAccount: null"), r"requireServiceAccount: Required value"),
        (
            ("requireServiceAccount: true", "requireServiceAccount: false"),
            r"requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false",
        ),
        (("cacheType: ServiceAccount", "cacheType: ''"), r"tokenAttributes\.cacheType: Required value"),
        (("cacheType: ServiceAccount", "cacheType: Pod"), r"tokenAttributes\.cacheType: Unsupported value: \"Pod\""),
        (("[example.com/Team]", "[example.com/role]"), r"tokenAttributes: Invalid value: .*both required and optional"),
        (("[example.com/Team]", "[_bad]"), r"optionalServiceAccountAnnotationKeys: Invalid value: \"_bad\""),
        (
            ("[example.com/role]", "[example.com/role, example.com/role]"),
            r"requiredServiceAccountAnnotationKeys: Duplicate value",
        ),
        (("args: [", "argz: ["), r"providers\[0\]: unknown field 'argz'"),
        (("args: [", "Args: ["), r"providers\[0\]: unknown field 'Args'"),  # case-sensitive, as strict decoding
        (("    args: [", "    name: again\n    args: ["), r"providers\[0\]: duplicate field 'name'"),
        (("kind: CredentialProviderConfig", "kind: KubeletConfiguration"), r"kind: must be CredentialProviderConfig"),
        (("kubelet.config.k8s.io/v1\n", "kubelet.config.k8s.io/v2\n"), r"apiVersion: must be one of"),
        (("env:\n      - {name: AWS_PROFILE, value: hidden-value}", "env: 5"), r"providers\[0\]\.env: expected an"),
        (("providers:\n", "providers:\n  - null\n"), r"providers\[0\]\.name: Required value"),
    ],
)
def test_each_invalid_field_is_named(edit: tuple[str, str], message: str) -> None:
    assert edit[0] in GOOD
    with pytest.raises(ProviderConfigError, match=message) as caught:
        parse_provider_config(GOOD.replace(edit[0], edit[1], 1), "/etc/cp.yaml")
    assert "/etc/cp.yaml" in str(caught.value)
    assert "hidden-value" not in str(caught.value)


def test_token_attributes_need_the_v1_config() -> None:
    older = GOOD.replace("kubelet.config.k8s.io/v1\n", "kubelet.config.k8s.io/v1beta1\n")
    with pytest.raises(ProviderConfigError, match=r"providers\[1\]: unknown field 'tokenAttributes'"):
        parse_provider_config(older, "c.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "providers: [}",
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: []\n",
        '{"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig", "providers": [], "x": NaN}',
        "apiVersion: kubelet.config.k8s.io/v1\napiVersion: kubelet.config.k8s.io/v1\n",
        "# padding\n" * 120_000,  # over 1 MiB
    ],
)
def test_unusable_files_are_refused(text: str) -> None:
    with pytest.raises(ProviderConfigError, match=r"^c\.yaml: |c\.yaml: providers: Required"):
        parse_provider_config(text, "c.yaml")


# Outcomes of the kubelet's RegisterCredentialProviderPlugins (v1.37.2, every binary present) for each edit.
GO_CONFIG_OUTCOMES = [
    ("name: token-provider", "name: 2001-12-14", True),  # a timestamp stays a string
    ("name: token-provider", "name: yes", False),  # go-yaml's YAML 1.1 boolean
    ('["tokens.example.com"]', '[""]', True),  # url.Parse("https://") succeeds
    ("- {name: AWS_PROFILE, value: hidden-value}", "- null", True),  # a zero ExecEnvVar
    (
        "optionalServiceAccountAnnotationKeys: [example.com/Team]",
        "optionalServiceAccountAnnotationKeys: [Example.com/Team]",
        True,
    ),
    ("    tokenAttributes:\n", "    tokenAttributes: null\n    x:\n", False),
    ("    args: [get-credentials, --verbose]\n", "    args: [a]\n    args: [b]\n", False),
    ("[get-credentials, --verbose]", "[1]", False),
    ("requireServiceAccount: true", "requireServiceAccount: 'true'", False),
    ("kind: CredentialProviderConfig", "Kind: CredentialProviderConfig", False),
    ("serviceAccountTokenAudience: registry.example.com", "serviceAccountTokenAudience: .inf", False),
]


@pytest.mark.parametrize(("old", "new", "accepted"), GO_CONFIG_OUTCOMES)
def test_edge_cases_end_as_the_kubelet_ends_them(old: str, new: str, accepted: bool) -> None:  # Go
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if accepted:
        assert len(parse_provider_config(text, "c.yaml")) == 2
        assert len(parse_provider_config(text + "---\nnot: read\n", "c.yaml")) == 2  # only the first document
    else:
        with pytest.raises(ProviderConfigError):
            parse_provider_config(text, "c.yaml")


# Plain YAML scalars as sigs.k8s.io/yaml's YAMLToJSON (go-yaml v2) types them.
GO_YAML_SCALARS = {
    "string": "2001-12-14 2001-12-14t21:59:43.10-05:00 1:20 0x 12abc 1.2.3 infinity tRUE 12h 5m0s 0s _1 1e 'quoted'",
    "number": "0o17 017 08 1_000 .5 0x1F 1e3 +.5 0b101 -0b101 0 -1 +1 0. 1. 0_ 1__0 9223372036854775808",
    "boolean": "Yes y N off On True",
    "null": "~ null NULL",
    "error": ".inf -.Inf .NaN",
}


@pytest.mark.parametrize(("text", "kind"), [(t, k) for k, ts in GO_YAML_SCALARS.items() for t in ts.split()])
def test_yaml_scalars_are_typed_as_go_yaml_types_them(text: str, kind: str) -> None:  # Go
    if kind == "error":
        with pytest.raises(DecodeError):
            load_document(f"v: {text}\n", allow_yaml=True)
        return
    document = load_document(f"v: {text}\n", allow_yaml=True)
    assert isinstance(document, Obj)
    assert kind_of(dict(document)["v"]) == kind


# --- Go's time.ParseDuration ----------------------------------------------------------------------

SECOND, MINUTE, HOUR, MS, US = 10**9, 60 * 10**9, 3600 * 10**9, 10**6, 10**3
GO_DURATIONS = [
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND),
    ("+5s", 5 * SECOND),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600 * MS),
    ("5.s", 5 * SECOND),
    (".5s", 500 * MS),
    ("1.0s", SECOND),
    ("1.00s", SECOND),
    ("1.004s", SECOND + 4 * MS),
    ("1.0040s", SECOND + 4 * MS),
    ("100.00100s", 100 * SECOND + MS),
    ("10ns", 10),
    ("11us", 11 * US),
    ("12\u00b5s", 12 * US),
    ("12\u03bcs", 12 * US),
    ("13ms", 13 * MS),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MS),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MS)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MS + 5 * US + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MS),
    ("52763797000ns", 52763797000),
    ("0.3333333333333333333h", 20 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036854775.808us", -(1 << 63)),
    ("-9223372036s854ms775us808ns", -(1 << 63)),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
]
GO_DURATION_ERRORS = [
    "",
    "3",
    "-",
    "s",
    ".",
    "-.",
    ".s",
    "+.s",
    "1d",
    "\udc85\udc85",
    "\udcffff",
    "hello \udcffff world",
    "\ufffd",
    "\ufffd hello \ufffd world",
    "9223372036854775810ns",
    "9223372036854775808ns",
    "-9223372036854775809ns",
    "9223372036854776us",
    "3000000h",
    "9223372036854775.808us",
    "9223372036854ms775us808ns",
]


@pytest.mark.parametrize(("text", "nanoseconds"), GO_DURATIONS)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", GO_DURATION_ERRORS)
def test_go_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"^time: "):
        parse_duration(text)


# --- matchImages (isImageAllowed over policies.image.keyring.urls_match_str) ----------------------------


@pytest.mark.parametrize(
    ("patterns", "image", "matches"),
    [
        (["*.dkr.ecr.*.amazonaws.com"], "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app", True),
        (["*.dkr.ecr.*.amazonaws.com"], "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/app", False),
        (["*.azurecr.io"], "team.azurecr.io/app", True),
        (["*.io"], "team.azurecr.io/app", False),  # one glob, one label
        (["gcr.io"], "gcr.io/project/app", True),
        (["registry.io:8080/path"], "registry.io:8080/path/app", True),
        (["registry.io:8080/path"], "registry.io/path/app", False),  # a port in the pattern must be there
        (["registry.io"], "registry.io:8080/app", False),  # and one in the image must be in the pattern
        (["registry.io/team"], "registry.io/other/app", False),  # the path is a prefix
        (["app*.k8s.io"], "app1.k8s.io/x", True),
        (["k8s.*"], "k8s.io/x", True),
        (["[", "other.io"], "other.io/x", True),  # a malformed pattern matches nothing; others still do
    ],
)
def test_match_images(patterns: list[str], image: str, matches: bool) -> None:
    spec = exec_provider()
    assert ExecProvider(spec.name, tuple(patterns), 0, V1).matches(image) is matches
