from __future__ import annotations

from oci2bin.naming import output_name, repo_name, repo_tag


def test_output_name():
    assert output_name("alpine:latest") == "alpine_latest"
    assert output_name("alpine") == "alpine_latest"
    assert output_name("nginx:1.25") == "nginx_1.25"
    assert output_name("redis:7-alpine") == "redis_7-alpine"
    assert output_name("ghcr.io/org/app:v1") == "app_v1"
    assert output_name("localhost:5000/x/y:2") == "y_2"
    assert output_name("app@sha256:" + "ab" * 32) == "app_" + "ab" * 6
    assert output_name(None, "fallback") == "fallback"


def test_repo_tag_and_name():
    assert repo_tag("alpine") == "alpine:latest"
    assert repo_tag("localhost/bb:1") == "localhost/bb:1"
    assert repo_tag("x@sha256:" + "a" * 64) is None
    assert repo_tag("Not Valid!") is None
    assert repo_name("docker.io/library/redis:7") == "docker.io/library/redis"
    assert repo_name("localhost:5000/a:1") == "localhost:5000/a"


def test_progress_only_when_enabled(capsys):
    from oci2bin.cli.common import human_size, progress_for

    assert progress_for("x", enabled=False) is None
    show = progress_for("x", enabled=True)
    show(50, 100)
    show(100, 100)
    err = capsys.readouterr().err
    assert "\roci2bin: writing x:  50%" in err and err.endswith("\n")
    assert human_size(12_400_000) == "12.4 MB"
