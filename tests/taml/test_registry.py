import threading
from pathlib import Path

import pytest

from taml import registry, storage

MODEL = "taml"


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "artifacts")
    return request.getfixturevalue("gcs_root")


def _model_dir(tmp_path: Path, name: str, payload: bytes = b"weights") -> Path:
    d = tmp_path / name
    (d / "vocab").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(payload)
    (d / "model.json").write_text('{"arch": "taml"}')
    (d / "vocab" / "user_id.json").write_text("[]")
    return d


def test_publish_is_complete_immutable_and_verified(root, tmp_path):
    src = _model_dir(tmp_path, "v1")
    uri = registry.publish_version(root, MODEL, "20261101-000000", src)
    assert registry.is_complete(root, MODEL, "20261101-000000")
    assert registry.list_versions(root, MODEL) == ["20261101-000000"]
    assert set(registry.verify_version(root, MODEL, "20261101-000000")) == {
        "model.safetensors",
        "model.json",
        "vocab/user_id.json",
    }
    # Re-publishing identical content is a no-op (re-runs); different content is refused.
    assert registry.publish_version(root, MODEL, "20261101-000000", src) == uri
    with pytest.raises(registry.RegistryError, match="immutable"):
        registry.publish_version(root, MODEL, "20261101-000000", _model_dir(tmp_path, "other", b"changed"))
    # Tampering after publication is caught.
    storage.write_bytes(storage.join(uri, "model.safetensors"), b"tampered")
    with pytest.raises(registry.RegistryError, match="checksum mismatch"):
        registry.verify_version(root, MODEL, "20261101-000000")


def test_incomplete_versions_are_invisible(root, tmp_path):
    storage.write_bytes(storage.join(registry.version_uri(root, MODEL, "half"), "model.json"), b"{}")
    assert registry.list_versions(root, MODEL) == []
    with pytest.raises(registry.RegistryError, match="missing or incomplete"):
        registry.verify_version(root, MODEL, "half")
    with pytest.raises(registry.RegistryError, match="no complete version"):
        registry.promote(root, MODEL, "half")


def test_promote_and_rollback_keep_lineage(root, tmp_path):
    for v in ("v1", "v2", "v3"):
        registry.publish_version(root, MODEL, v, _model_dir(tmp_path, v, v.encode()))
    assert registry.read_alias(root, MODEL) is None
    a = registry.promote(root, MODEL, "v1", blessing="b1")
    assert (a.version, a.previous_version, a.history) == ("v1", None, [])
    registry.promote(root, MODEL, "v2", blessing="b2")
    a = registry.promote(root, MODEL, "v3", blessing="b3")
    assert (a.version, a.previous_version, a.history, a.blessing) == ("v3", "v2", ["v2", "v1"], "b3")
    a = registry.rollback(root, MODEL)
    assert (a.version, a.previous_version, a.history) == ("v2", "v3", ["v1"])
    a = registry.rollback(root, MODEL)
    assert a.version == "v1"
    with pytest.raises(registry.RegistryError, match="nothing to roll back"):
        registry.rollback(root, MODEL)
    assert registry.production_version(root, MODEL) == "v1"


def test_a_decision_on_a_stale_alias_is_refused(root, tmp_path):
    for v in ("v1", "v2", "v3"):
        registry.publish_version(root, MODEL, v, _model_dir(tmp_path, v, v.encode()))
    registry.promote(root, MODEL, "v1")
    seen = registry.read_alias(root, MODEL)
    registry.promote(root, MODEL, "v2")  # someone else moved it meanwhile
    with pytest.raises(registry.RegistryError, match="changed while"):
        registry.promote(root, MODEL, "v3", expected=seen)
    assert registry.production_version(root, MODEL) == "v2"


def test_concurrent_promotions_exactly_one_wins_and_the_alias_is_never_torn(root, tmp_path):
    versions = [f"v{i}" for i in range(4)]
    for v in versions:
        registry.publish_version(root, MODEL, v, _model_dir(tmp_path, v, v.encode()))
    registry.promote(root, MODEL, "v0")
    seen = registry.read_alias(root, MODEL)
    barrier = threading.Barrier(3)
    results: dict[str, str] = {}

    def attempt(v: str) -> None:
        barrier.wait()
        try:
            registry.promote(root, MODEL, v, expected=seen)
            results[v] = "won"
        except registry.RegistryError:
            results[v] = "lost"

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, r in results.items() if r == "won"]
    assert len(winners) == 1
    alias = registry.read_alias(root, MODEL)  # parses: never torn
    assert alias.version == winners[0] and alias.previous_version == "v0"


def test_download_version(root, tmp_path):
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    out = registry.download_version(root, MODEL, "v1", tmp_path / "dl")
    assert (out / "vocab" / "user_id.json").read_text() == "[]"
