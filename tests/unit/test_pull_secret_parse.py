"""Tests for policies.image.pull_secret_parse.

Cases marked "upstream" are ported from Kubernetes (Apache-2.0), pkg/credentialprovider/config_test.go:
TestReadDockerConfigFile (its content, without the file), TestDockerConfigJsonJSONDecode,
TestDockerConfigJSONDecode, TestDockerConfigEntryJSONDecode, TestDecodeDockerConfigFieldAuth and
TestDockerConfigEntryJSONCompatibleEncode.  The longer TestDecodeDockerConfigFieldAuth table is the
current one, as kept in k8s.io/cloud-provider's copy of config_test.go (padding and newline cases).
"""

from __future__ import annotations

import base64
import json

import pytest

from policies.image.pull_secret_parse import (
    SECRET_TYPE_DOCKER_CONFIG_JSON,
    SECRET_TYPE_DOCKERCFG,
    DockerConfigEntry,
    MalformedDockerConfig,
    MissingSecretKey,
    PullSecretError,
    UndecodableSecret,
    WrongSecretType,
    decode_auth_field,
    decode_docker_config_entry,
    encode_auth_field,
    parse_pull_secret,
    read_docker_config_json,
    read_dockercfg,
    redact_registry_key,
)

FOO = DockerConfigEntry("foo", "bar", "foo@example.com")  # fake values, as upstream
BAR = DockerConfigEntry("bar", "baz", "bar@example.com")
TWO_ENTRIES = (
    '{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, '
    '"http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}'
)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


# upstream: TestReadDockerConfigFile (the file's content; reading files is not this module's job)
def test_read_docker_config_file_content() -> None:
    content = '{ "auths": { "http://foo.example.com":{"auth":"Zm9vOmJhcgo=","email":"foo@example.com"}}}'
    assert read_docker_config_json(content) == {"http://foo.example.com": DockerConfigEntry("foo", "bar\n", FOO.email)}


# upstream: TestDockerConfigJsonJSONDecode
def test_docker_config_json_decode() -> None:
    config = read_docker_config_json('{"auths": ' + TWO_ENTRIES + "}")
    assert config == {"http://foo.example.com": FOO, "http://bar.example.com": BAR}


# upstream: TestDockerConfigJSONDecode
def test_dockercfg_decode() -> None:
    assert read_dockercfg(TWO_ENTRIES) == {"http://foo.example.com": FOO, "http://bar.example.com": BAR}


# upstream: TestDockerConfigEntryJSONDecode
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # simple case, just decode the fields
        ('{"username": "foo", "password": "bar", "email": "foo@example.com"}', FOO),
        # auth field decodes to username & password
        ('{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}', FOO),
        # auth field overrides username & password
        (
            '{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"}',
            DockerConfigEntry("ping", "pong", "foo@example.com"),
        ),
        # poorly-formatted auth causes failure
        ('{"auth": "pants", "email": "foo@example.com"}', None),
        # invalid JSON causes failure
        ('{"email": false}', None),
    ],
)
def test_docker_config_entry_json_decode(raw: str, expected: DockerConfigEntry | None) -> None:
    if expected is None:
        with pytest.raises(MalformedDockerConfig):
            decode_docker_config_entry(raw)
    else:
        assert decode_docker_config_entry(raw) == expected


# upstream: TestDecodeDockerConfigFieldAuth
@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Zm9vOmJhcg==", ("foo", "bar")),  # auth field decodes to username & password
        ("Zm9vOmJhcg", ("foo", "bar")),  # same, but not padded
        ("Zm9vOm\nJhcg==\n", ("foo", "bar")),  # same, with new line characters
        (base64.b64encode(b"foo:bar").decode(), ("foo", "bar")),  # standard encoding (with padding)
        (base64.b64encode(b"foo:bar").decode().rstrip("="), ("foo", "bar")),  # raw encoding (no padding)
        (encode_auth_field("foo", "bar"), ("foo", "bar")),  # encoded by encodeDockerConfigFieldAuth
        ("cGFudHM=", None),  # good base64 data, but no colon separating username & password
        ("Zm9vOmJhcg== ", None),  # only new line characters are ignored
        ("pants", None),  # bad base64 data
    ],
)
def test_decode_docker_config_field_auth(field: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(MalformedDockerConfig):
            decode_auth_field(field)
    else:
        assert decode_auth_field(field) == expected


# upstream: TestDockerConfigEntryJSONCompatibleEncode (the `auth` field it writes)
def test_docker_config_entry_json_compatible_encode() -> None:
    assert encode_auth_field("foo", "bar") == "Zm9vOmJhcg=="


# --- beyond upstream --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("dTpwOnE=", ("u", "p:q")),  # split on the first ':' only
        (b64(":"), ("", "")),
        ("Zm9vOmJhcg=\n=", ("foo", "bar")),  # Go skips newlines even inside the padding
        ("Zm9vOmJhcn==", ("foo", "bar")),  # non-zero trailing bits are accepted (not Strict)
        (b64(b"u:\xff"), ("u", "\udcff")),  # non-UTF-8 bytes survive as surrogate escapes
        ("Zm9vOmJhcg=", None),  # wrong padding
        ("Zm9vOmJhcg===", None),
        ("Zm9vOmJhcg==Zg==", None),  # data after padding
        ("Zm9vOmJhc", None),  # a lone final character
        ("Zm9v\tOmJhcg==", None),  # other whitespace is illegal
    ],
)
def test_decode_auth_field_follows_go_base64(field: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(MalformedDockerConfig):
            decode_auth_field(field)
    else:
        assert decode_auth_field(field) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Go matches field names case-insensitively, U+017F folding to 's' included.
        ('{"Auths": {"r": {"USERNAME": "u", "Password": "p", "EMAIL": "e"}}}', DockerConfigEntry("u", "p", "e")),
        ('{"auths": {"r": {"u\u017fername": "u"}}}', DockerConfigEntry("u")),
        # null leaves a string field as it was; later duplicates win.
        (
            '{"auths": {"r": {"username": "a", "username": null, "password": "1", "password": "2"}}}',
            DockerConfigEntry("a", "2"),
        ),
        # an empty auth does not override
        ('{"auths": {"r": {"username": "u", "password": "p", "auth": ""}}}', DockerConfigEntry("u", "p")),
        # a null entry is an empty one (UnmarshalJSON is handed the literal null)
        ('{"auths": {"r": null}}', DockerConfigEntry()),
        # unknown fields and HttpHeaders are ignored
        ('{"auths": {"r": {"identitytoken": 1}}, "HttpHeaders": {"X": "y", "Z": null}}', DockerConfigEntry()),
        # a lone surrogate escape decodes to U+FFFD, as in Go
        ('{"auths": {"r": {"username": "\\ud800"}}}', DockerConfigEntry("\ufffd")),
    ],
)
def test_go_json_decoding_rules(raw: str, expected: DockerConfigEntry) -> None:
    assert read_docker_config_json(raw) == {"r": expected}


def test_auths_null_resets_and_duplicates_merge() -> None:
    raw = '{"auths": {"a": {}}, "auths": {"b": {}}, "auths": {"b": {"email": "x"}}}'
    assert read_docker_config_json(raw) == {"a": DockerConfigEntry(), "b": DockerConfigEntry(email="x")}
    assert read_docker_config_json('{"auths": {"a": {}}, "auths": null, "auths": {"b": {}}}') == {
        "b": DockerConfigEntry()
    }
    assert read_docker_config_json("null") == {}
    assert read_docker_config_json("{}") == {}
    assert read_dockercfg("null") == {}


def test_invalid_utf8_is_replaced_per_byte() -> None:
    raw = b'{"r": {"username": "a\xe2\x82b"}}'
    assert read_dockercfg(raw) == {"r": DockerConfigEntry("a\ufffd\ufffdb")}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "[]",
        '"x"',
        "{",
        '{"r": "x"}',
        '{"r": []}',
        '{"r": {"username": 1}}',
        '{"r": {"password": {}}}',
        '{"r": {"auth": true}}',
        '{"r": {"email": NaN}}',
        '\ufeff{"r": {}}',  # Go rejects a byte order mark
        '{"r": {}} x',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_dockercfg(raw: str) -> None:
    with pytest.raises(MalformedDockerConfig):
        read_dockercfg(raw)


@pytest.mark.parametrize(
    "raw",
    ['{"auths": []}', '{"auths": {"r": 5}}', '{"HttpHeaders": []}', '{"httpheaders": {"a": 1}}', "1"],
)
def test_malformed_docker_config_json(raw: str) -> None:
    with pytest.raises(MalformedDockerConfig):
        read_docker_config_json(raw)


CONFIG_JSON = '{"auths": {"registry.example.com": {"auth": "' + b64("u:p") + '"}}}'
DOCKERCFG = '{"registry.example.com": {"username": "u", "password": "p"}}'


def test_parse_pull_secret_dockerconfigjson() -> None:
    data = {".dockerconfigjson": b64(CONFIG_JSON), ".dockercfg": "!!"}  # the other key is not read
    assert parse_pull_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, data) == {
        "registry.example.com": DockerConfigEntry("u", "p")
    }


def test_parse_pull_secret_dockercfg() -> None:
    data = {".dockercfg": b64(DOCKERCFG)}
    assert parse_pull_secret(SECRET_TYPE_DOCKERCFG, data) == {"registry.example.com": DockerConfigEntry("u", "p")}


def test_config_json_in_a_dockercfg_secret_is_one_bogus_entry() -> None:
    # As in Go: "auths" is read as a registry key whose entry has only unknown fields.
    assert parse_pull_secret(SECRET_TYPE_DOCKERCFG, {".dockercfg": b64(CONFIG_JSON)}) == {"auths": DockerConfigEntry()}


def test_secret_data_base64_may_hold_newlines() -> None:
    encoded = b64(DOCKERCFG)
    data = {".dockercfg": encoded[:8] + "\r\n" + encoded[8:]}
    assert parse_pull_secret(SECRET_TYPE_DOCKERCFG, data)


@pytest.mark.parametrize(
    ("secret_type", "data", "error"),
    [
        ("Opaque", {".dockerconfigjson": b64(CONFIG_JSON)}, WrongSecretType),
        (None, {".dockerconfigjson": b64(CONFIG_JSON)}, WrongSecretType),
        ("kubernetes.io/basic-auth", {}, WrongSecretType),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockercfg": b64(DOCKERCFG)}, MissingSecretKey),
        (SECRET_TYPE_DOCKERCFG, {".dockerconfigjson": b64(CONFIG_JSON)}, MissingSecretKey),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, None, MissingSecretKey),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": ""}, MissingSecretKey),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": "\n"}, MissingSecretKey),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": "not base64!"}, UndecodableSecret),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": "e30"}, UndecodableSecret),  # must be padded
        (SECRET_TYPE_DOCKERCFG, {".dockercfg": 12}, UndecodableSecret),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": b64("{")}, MalformedDockerConfig),
        (SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": b64('{"auths": []}')}, MalformedDockerConfig),
        (SECRET_TYPE_DOCKERCFG, {".dockercfg": b64('{"r": {"auth": "pants"}}')}, MalformedDockerConfig),
    ],
)
def test_parse_pull_secret_errors(secret_type: str | None, data: dict[str, str] | None, error: type) -> None:
    with pytest.raises(error) as caught:
        parse_pull_secret(secret_type, data)
    assert isinstance(caught.value, PullSecretError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.__cause__ is None  # nothing holding the document is chained


SECRETS = ("leak-user", "leak-pass", "leak-mail@example.com", "leak-header")


def _leaky_cases() -> list[tuple[str, dict[str, str]]]:
    auth = b64(f"{SECRETS[0]}:{SECRETS[1]}")
    fields = f'"username": "{SECRETS[0]}", "password": "{SECRETS[1]}", "email": "{SECRETS[2]}"'
    key = f"https://{SECRETS[0]}:{SECRETS[1]}@registry.example.com/v2/"
    bodies = [
        '{"auths": {"' + key + '": {' + fields + ', "auth": 5}}}',
        '{"auths": {"' + key + '": {' + fields + ', "auth": "' + auth[:-3] + '"}}}',
        '{"auths": {"' + key + '": {' + fields + ', "auth": "' + b64(SECRETS[1]) + '"}}}',
        '{"auths": {"' + key + '": {' + fields + '}}, "HttpHeaders": {"' + SECRETS[3] + '": 1}}',
        '{"auths": {"' + key + '": {' + fields + "}",
        '{"auths": {"' + key + '": [' + fields.replace(":", ",") + "]}}",
        '{"auths": {"' + key + '": {' + fields + ', "x": Infinity}}}',
    ]
    cases = [(SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": b64(body)}) for body in bodies]
    cases.append((SECRET_TYPE_DOCKER_CONFIG_JSON, {".dockerconfigjson": auth + "!"}))
    cases.append(("Opaque", {".dockerconfigjson": auth}))
    return cases


@pytest.mark.parametrize(("secret_type", "data"), _leaky_cases())
def test_errors_carry_no_credential_material(secret_type: str, data: dict[str, str]) -> None:
    with pytest.raises(PullSecretError) as caught:
        parse_pull_secret(secret_type, data)
    text = ""
    error: BaseException | None = caught.value
    while error is not None:  # nothing chained to the error may hold the document either
        text += str(error) + repr(error) + repr(error.args) + str(getattr(error, "doc", ""))
        error = error.__cause__ or error.__context__
    for secret in (*SECRETS, b64(f"{SECRETS[0]}:{SECRETS[1]}"), data.get(".dockerconfigjson", "")):
        assert secret not in text


def test_entry_repr_carries_no_credential_material() -> None:
    entry = DockerConfigEntry(SECRETS[0], SECRETS[1], SECRETS[2])
    for secret in SECRETS[:3]:
        assert secret not in repr(entry)
        assert secret not in str({"r": entry})
    assert repr(DockerConfigEntry()) == "DockerConfigEntry(username='', password='', email='')"


@pytest.mark.parametrize(
    ("key", "redacted"),
    [
        ("https://u:p@registry.example.com/v2/", "https://<redacted>@registry.example.com/v2/"),
        ("u@p@registry.example.com", "<redacted>@registry.example.com"),
        ("registry.example.com/a@b", "registry.example.com/a@b"),  # an '@' in the path is not userinfo
        ("https://registry.example.com", "https://registry.example.com"),
    ],
)
def test_redact_registry_key(key: str, redacted: str) -> None:
    assert redact_registry_key(key) == redacted


def test_round_trip_through_real_json() -> None:
    # Entries built by docker login / kubectl create secret docker-registry.
    doc = {"auths": {"registry.example.com:5000": {"username": "u", "password": "p:w", "auth": b64("u:p:w")}}}
    data = {".dockerconfigjson": b64(json.dumps(doc))}
    assert parse_pull_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, data) == {
        "registry.example.com:5000": DockerConfigEntry("u", "p:w")
    }
