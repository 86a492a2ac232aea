"""The alias follower survives any production.json, refuses unsafe version names, and says so."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import serving_fixtures as F

from serving import ModelHolder
from serving.models import AliasError, AliasFollower, check_version_name, inside
from taml.core import registry

# Each would be a folder name of the cache and a registry path: none may be followed.
BAD_VERSIONS = [
    ["v1"],  # unhashable: ended the follower thread before the fix
    {"name": "v1"},
    5,
    None,
    True,
    "",
    ".",
    "..",
    "../../../etc",
    "a/b",
    "..hidden",
    "v1/../../x",
    "v\n1",
    "v 1",
    "é",
    "x" * 201,
]


def _write_alias(art: str, version) -> None:
    body = {"version": version, "previous_version": None, "blessing": None, "time": "t", "history": []}
    path = Path(registry.alias_uri(art, "taml"))
    path.write_text(json.dumps(body))


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("follower")
    cfg = F.serving_config(tmp)
    return {v: F.make_version(cfg, tmp / "models", v, seed=i) for i, v in enumerate(("f1", "f2"))}


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=[repr(v)[:20] for v in BAD_VERSIONS])
def test_a_bad_alias_is_refused_reported_and_the_old_model_keeps_serving(versions, tmp_path, version):
    art = str(tmp_path / "art")
    F.publish(art, "taml", versions["f1"])
    holder = ModelHolder()
    f = AliasFollower(holder, art, "taml", poll_interval_s=60, cache_dir=str(tmp_path / "cache"))
    assert f.check() == "swapped"
    _write_alias(art, version)
    assert f.check() == "invalid"
    st = f.status()
    assert st["serving_version"] == "f1" and st["alias_version"] is None
    assert "refused" in st["last_error"] and st["last_result"] == "invalid"
    assert [p.name for p in (tmp_path / "cache").iterdir()][0].startswith("f1-")  # nothing else made
    _write_alias(art, "f1")
    assert f.check() == "unchanged" and f.status()["last_error"] is None


def test_the_follower_thread_survives_a_bad_alias_and_follows_the_next_good_one(versions, tmp_path):
    art = str(tmp_path / "art")
    for v in versions.values():
        F.publish(art, "taml", v, promote=False)
    _write_alias(art, "f1")
    holder = ModelHolder()
    f = AliasFollower(holder, art, "taml", poll_interval_s=0.05, cache_dir=str(tmp_path / "cache"))
    f.start()
    try:
        assert F.wait_until(lambda: holder.current is not None and holder.current.version == "f1", 30)
        _write_alias(art, ["f2"])
        rounds = f.rounds
        assert F.wait_until(lambda: f.rounds >= rounds + 3, 10)
        assert f.status()["following"] is True and f.last_result == "invalid"
        _write_alias(art, "f2")
        assert F.wait_until(lambda: holder.current.version == "f2", 30), f.status()
    finally:
        f.stop()


def test_version_names_and_cache_paths_stay_inside_their_root(tmp_path):
    assert check_version_name("20261103-abc_1.2") == "20261103-abc_1.2"
    for bad in BAD_VERSIONS:
        with pytest.raises(AliasError):
            check_version_name(bad)
    root = tmp_path / "cache"
    root.mkdir()
    assert inside(root, "v1-abcd") == (root / "v1-abcd").resolve()
    for escape in ("../x", "/etc", "a/../../x", "."):
        with pytest.raises(AliasError):
            inside(root, escape)
    (root / "link").symlink_to(tmp_path)  # a symlink inside the root pointing out of it
    with pytest.raises(AliasError):
        inside(root, "link")


def test_readiness_reports_the_follower_state(ready_world):
    url, art = ready_world["url"], ready_world["art"]
    alias = Path(registry.alias_uri(art, "taml"))
    good = alias.read_bytes()
    try:
        _write_alias(art, "../../outside")
        assert F.wait_until(
            lambda: httpx.get(url + "/readyz").json()["alias"]["last_result"] == "invalid", 10
        )
        r = httpx.get(url + "/readyz")
        body = r.json()
        assert r.status_code == 200 and body["ready"] is True  # still serving the last good version
        assert body["alias"]["serving_version"] == "r1" and body["alias"]["alias_version"] is None
        assert "refused" in body["alias"]["last_error"] and body["alias"]["following"] is True
    finally:
        alias.write_bytes(good)
    assert F.wait_until(lambda: httpx.get(url + "/readyz").json()["alias"]["last_error"] is None, 10)
    assert httpx.get(url + "/readyz").json()["alias"]["alias_version"] == "r1"
