from taml import storage


def test_roundtrip_on_emulator(gcs_root):
    uri = storage.join(gcs_root, "a", "b.txt")
    storage.write_text(uri, "hello")
    assert storage.read_text(uri) == "hello"
    assert storage.list_files(gcs_root) == [uri]
