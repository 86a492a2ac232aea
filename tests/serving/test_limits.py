"""Limits of the server: loopback by default, an optional bearer token, concurrency and body-time
bounds from the config, on a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
import serving_fixtures as F

from serving import Runtime, create_app
from serving.auth import AuthConfigError
from serving.features import OnlineFeatures, StaticSource
from taml.core.config import load_config

TOKEN = "t0k3n-" + "x" * 26
ENV = "TAML_TEST_SERVING_TOKEN"


def _runtime(tmp, *overrides, env=None):
    cfg = F.serving_config(tmp, *overrides)
    feats = OnlineFeatures(
        lambda: StaticSource(users={1: {"gender": 1}}, items_by_id={2: {"category_id": 3}}), 100
    )
    return cfg, Runtime(
        cfg, str(tmp / "data"), str(tmp / "art"), features=feats, env=env if env is not None else {}
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    cfg, rt = _runtime(
        tmp, f"serving.auth_token_env={ENV}", "serving.body_timeout_s=0.5", "serving.limit_concurrency=3",
        env={ENV: TOKEN},
    )  # fmt: skip
    F.publish(str(tmp / "art"), "taml", F.make_version(cfg, tmp / "models", "g1"))
    with F.running_server(create_app(rt), config=cfg) as url:
        assert F.wait_until(lambda: rt.service.ready, 30)
        yield {"url": url, "rt": rt}


def test_defaults_bind_loopback_and_bound_the_server():
    s = load_config(env={}).serving
    assert s.host == "127.0.0.1" and s.auth_token_env == ""
    assert s.limit_concurrency >= 1 and s.body_timeout_s > 0 and s.timeout_keep_alive_s >= 1


def test_a_token_env_that_is_unset_stops_the_server_before_it_starts(tmp_path):
    with pytest.raises(AuthConfigError, match=ENV) as e:
        _runtime(tmp_path, f"serving.auth_token_env={ENV}", env={})
    assert TOKEN not in str(e.value)


def test_scoring_needs_the_token_and_health_routes_stay_open(guarded):
    url, rt = guarded["url"], guarded["rt"]
    body = {"instances": [{"user_id": 1, "item_id": 2}]}
    before = rt.log.stats()["submitted"]
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": TOKEN},
        {"authorization": f"Basic {TOKEN}"},
    ):
        for path, payload in (
            ("/v1/models/taml:predict", body),
            ("/v1/models/taml:rank", {"user_id": 1, "items": [2]}),
            ("/v2/models/taml/infer", {"inputs": []}),
        ):
            r = httpx.post(url + path, json=payload, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, headers)
            assert TOKEN not in r.text
        assert httpx.get(url + "/v2/models/taml", headers=headers).status_code == 401
    assert rt.log.stats()["submitted"] == before  # nothing reached the prediction log
    for path in (
        "/",
        "/healthz",
        "/readyz",
        "/v1/models/taml",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/taml/ready",
    ):
        assert httpx.get(url + path).status_code == 200, path
    r = httpx.post(url + "/v1/models/taml:predict", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["predictions"][0]["model_version"] == "g1"
    spec = httpx.get(url + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "401" in spec["paths"]["/v1/models/taml:predict"]["post"]["responses"]


def test_a_body_that_never_arrives_is_a_408_not_a_held_worker(guarded):
    host, port = guarded["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /v1/models/taml:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"instances": ['
        )
        start = time.monotonic()
        head = s.recv(200)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert time.monotonic() - start < 5


def test_connections_beyond_the_concurrency_limit_are_refused(guarded):
    host, port = guarded["url"].removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    try:
        assert F.wait_until(lambda: httpx.get(guarded["url"] + "/healthz").status_code == 503, 5)
    finally:
        for s in idle:
            s.close()
    assert F.wait_until(lambda: httpx.get(guarded["url"] + "/healthz").status_code == 200, 5)
