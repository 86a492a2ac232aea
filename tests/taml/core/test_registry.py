import threading
from pathlib import Path

import pytest

from taml.core import registry, storage

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


# --- names and paths: nothing the registry reads or writes leaves its root ---------------------

BAD_NAMES = ["..", ".", "../../other/versions/v1", "a/b", "/abs", "v1/..", "", "v 1", "v1\\..", "ü"]


def test_bad_version_and_model_names_are_refused_everywhere(root, tmp_path):
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    registry.promote(root, MODEL, "v1")
    alias = storage.read_bytes(registry.alias_uri(root, MODEL))
    src = _model_dir(tmp_path, "src", b"other")
    for name in BAD_NAMES:
        for call in (
            lambda name=name: registry.promote(root, MODEL, name),
            lambda name=name: registry.publish_version(root, MODEL, name, src),
            lambda name=name: registry.verify_version(root, MODEL, name),
            lambda name=name: registry.download_version(root, MODEL, name, tmp_path / "dl"),
            lambda name=name: registry.is_complete(root, MODEL, name),
            lambda name=name: registry.read_alias(root, name),
            lambda name=name: registry.list_versions(root, name),
        ):
            with pytest.raises(registry.RegistryError, match="invalid (version|model) name"):
                call()
    assert storage.read_bytes(registry.alias_uri(root, MODEL)) == alias
    assert registry.list_versions(root, MODEL) == ["v1"]


def test_the_promote_command_refuses_a_traversal_and_leaves_the_alias(tmp_path, capsys):
    from taml.cli.main import main

    root = str(tmp_path / "artifacts")
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    # A complete version outside this model's registry, reachable by '..'.
    other = registry.publish_version(root, "other", "v1", _model_dir(tmp_path, "o1", b"other"))
    assert Path(other).is_dir()
    registry.promote(root, MODEL, "v1")
    assert main(["promote", "../../other/versions/v1", "--artifact-root", root]) == 2
    assert "invalid version name" in capsys.readouterr().err
    assert registry.read_alias(root, MODEL).version == "v1"


@pytest.mark.parametrize("key", ["../escaped.bin", "/etc/escaped.bin", "a/../../escaped.bin", "./x", "a//b"])
def test_complete_file_keys_that_leave_the_version_are_refused(root, tmp_path, key):
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    target = registry.version_uri(root, MODEL, "v1")
    marker = storage.join(target, registry.COMPLETE_MARKER)
    body = storage.read_json(marker)
    body["files"][key] = "0" * 64
    storage.write_json(marker, body)
    dest = tmp_path / "deep" / "dl"
    with pytest.raises(registry.RegistryError, match="invalid file key"):
        registry.download_version(root, MODEL, "v1", dest)
    with pytest.raises(registry.RegistryError, match="invalid file key"):
        registry.promote(root, MODEL, "v1")
    assert not list(tmp_path.rglob("escaped.bin"))
    assert registry.read_alias(root, MODEL) is None


def test_a_symlink_out_of_the_download_folder_is_not_followed(tmp_path):
    root = str(tmp_path / "artifacts")
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    dest = tmp_path / "dl"
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir()
    (dest / "vocab").symlink_to(outside, target_is_directory=True)
    with pytest.raises(registry.RegistryError, match="outside"):
        registry.download_version(root, MODEL, "v1", dest)
    assert not list(outside.iterdir())


def test_an_alias_naming_a_path_is_not_followed(root, tmp_path):
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    storage.write_json(
        registry.alias_uri(root, MODEL),
        {"version": "../../other/versions/v1", "previous_version": None, "blessing": None, "time": "t"},
    )
    with pytest.raises(registry.RegistryError, match="not a valid production alias"):
        registry.read_alias(root, MODEL)


# --- concurrent publishes never mix files; the alias only moves onto verified files -------------


def _race(n: int, fn) -> dict[int, object]:
    barrier = threading.Barrier(n)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except registry.RegistryError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_publishes_of_one_version_with_other_content_never_mix(root, tmp_path):
    sources = [_model_dir(tmp_path, f"s{i}", f"weights-{i}".encode() * 1000) for i in range(4)]
    for i, s in enumerate(sources):
        (s / "vocab" / "user_id.json").write_text(f"[{i}]")
    results = _race(4, lambda i: registry.publish_version(root, MODEL, "v1", sources[i]))
    winners = [i for i, r in results.items() if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all("immutable" in str(r) for i, r in results.items() if i not in winners)
    # Every file of the version is the winner's, and the version verifies.
    out = registry.download_version(root, MODEL, "v1", tmp_path / "dl")
    won = sources[winners[0]]
    for rel in ("model.safetensors", "model.json", "vocab/user_id.json"):
        assert (out / rel).read_bytes() == (won / rel).read_bytes()
    registry.promote(root, MODEL, "v1")


def test_concurrent_publishes_of_the_same_content_all_succeed(root, tmp_path):
    src = _model_dir(tmp_path, "same", b"w" * 5000)
    results = _race(3, lambda i: registry.publish_version(root, MODEL, "v1", src))
    assert all(isinstance(r, str) for r in results.values()), results
    assert set(registry.verify_version(root, MODEL, "v1")) == {
        "model.safetensors",
        "model.json",
        "vocab/user_id.json",
    }


def test_complete_marker_is_created_only_once(root, tmp_path):
    registry.publish_version(root, MODEL, "v1", _model_dir(tmp_path, "v1"))
    marker = storage.join(registry.version_uri(root, MODEL, "v1"), registry.COMPLETE_MARKER)
    with pytest.raises(storage.PreconditionFailed):
        storage.write_new(marker, b"{}")


def test_promote_and_rollback_refuse_a_version_whose_files_changed(root, tmp_path):
    for v in ("v1", "v2"):
        registry.publish_version(root, MODEL, v, _model_dir(tmp_path, v, v.encode()))
    registry.promote(root, MODEL, "v1")
    registry.promote(root, MODEL, "v2")
    for v in ("v1", "v2"):
        storage.write_bytes(storage.join(registry.version_uri(root, MODEL, v), "model.safetensors"), b"x")
    with pytest.raises(registry.RegistryError, match="cannot roll back to taml v1: .*checksum mismatch"):
        registry.rollback(root, MODEL)
    registry.publish_version(root, MODEL, "v3", _model_dir(tmp_path, "v3", b"v3"))
    storage.delete(storage.join(registry.version_uri(root, MODEL, "v3"), "model.json"))
    with pytest.raises(registry.RegistryError, match="cannot promote taml v3: .*missing"):
        registry.promote(root, MODEL, "v3")
    assert registry.production_version(root, MODEL) == "v2"
