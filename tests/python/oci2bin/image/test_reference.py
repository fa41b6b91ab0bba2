import pytest
from oci2bin.image.reference import (
    InvalidReference,
    Reference,
    is_loopback_host,
    normalize,
    normalize_registry,
    parse,
    split_host_port,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "ref, registry, repo, tag, digest",
    [
        ("redis", "docker.io", "library/redis", "latest", None),
        ("redis:7", "docker.io", "library/redis", "7", None),
        ("library/redis", "docker.io", "library/redis", "latest", None),
        ("bitnami/redis:7.2-debian", "docker.io", "bitnami/redis", "7.2-debian", None),
        ("docker.io/redis", "docker.io", "library/redis", "latest", None),
        ("index.docker.io/library/redis", "docker.io", "library/redis", "latest", None),
        ("registry-1.docker.io/a/b", "docker.io", "a/b", "latest", None),
        ("ghcr.io/owner/repo/sub:v1", "ghcr.io", "owner/repo/sub", "v1", None),
        ("localhost/foo", "localhost", "foo", "latest", None),
        ("localhost:5000/foo/bar:t", "localhost:5000", "foo/bar", "t", None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
        ("myhost:5000/x", "myhost:5000", "x", "latest", None),
        (f"redis@{D}", "docker.io", "library/redis", None, D),
        (f"quay.io/a/b:tag@{D}", "quay.io", "a/b", "tag", D),
        ("foo/bar", "docker.io", "foo/bar", "latest", None),  # no '.'/':': Hub user
        ("a.b-c/f", "a.b-c", "f", "latest", None),
        ("my-user/my.repo_x", "docker.io", "my-user/my.repo_x", "latest", None),
    ],
)
def test_parse(ref, registry, repo, tag, digest):
    r = parse(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)


def test_str_and_properties():
    r = parse("redis")
    assert str(r) == "docker.io/library/redis:latest"
    assert r.api_host == "registry-1.docker.io"
    assert r.familiar_name == "redis"
    assert r.reference == "latest"
    p = parse(f"ghcr.io/o/r:v1@{D}")
    assert str(p) == f"ghcr.io/o/r:v1@{D}"
    assert p.reference == D  # the digest wins
    assert p.api_host == "ghcr.io"
    assert p.familiar_name == "ghcr.io/o/r"
    assert parse("bitnami/redis").familiar_name == "bitnami/redis"
    assert normalize("localhost:5000/x") == "localhost:5000/x:latest"
    assert parse("x").with_digest(D) == Reference("docker.io", "library/x", "latest", D)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " redis",
        "Redis",
        "redis:",
        "redis:-bad",
        "redis@sha256:abc",
        "redis@md5:" + "0" * 32,
        "a//b",
        "/a",
        "a/",
        "a:b:c",
        "localhost:99999/x",
        "foo/bar_",
        "x:" + "t" * 129,
        "ghcr.io/" + "a" * 300,
        "my_reg.io/f",
    ],
)
def test_invalid(bad):
    with pytest.raises(InvalidReference):
        parse(bad)


def test_uppercase_hint():
    with pytest.raises(InvalidReference, match="lowercase"):
        parse("ghcr.io/Owner/repo")


def test_loopback_and_hosts():
    for h in (
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "127.1.2.3:80",
        "[::1]:5000",
        "::1",
    ):
        assert is_loopback_host(h), h
    for h in ("example.com", "10.0.0.1:5000", "ghcr.io", "localhost.example.com"):
        assert not is_loopback_host(h), h
    assert split_host_port("[::1]:5000") == ("::1", 5000)
    assert split_host_port("example.com") == ("example.com", None)
    assert split_host_port("example.com:443") == ("example.com", 443)
    assert normalize_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry("http://localhost:5000") == "localhost:5000"
    assert normalize_registry("ghcr.io") == "ghcr.io"
