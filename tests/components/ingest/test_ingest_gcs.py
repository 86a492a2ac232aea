"""gs:// input and output through Beam's filesystems, against the GCS emulator."""

from __future__ import annotations

from ingest_helpers import SIM_CONFIG, START, read_dir

from components.ingest import run_ingest
from taml.core import layout as L
from taml.core import storage


def test_ingest_reads_and_writes_gcs(gcs_root, ingest_config):
    from simulator import simulate

    simulate(gcs_root, START, 2, 1500, seed=5, corrupt_rate=0.03, config=SIM_CONFIG)
    res = run_ingest(ingest_config, START, gcs_root)
    injected = storage.read_json(L.corruption_manifest(gcs_root))["partitions"]
    part = L.partition(START)
    for source in L.SOURCES:
        assert res.manifest["sources"][source][part]["dead_letter"] == injected.get(source, {}).get(part, {})
    assert storage.read_json(L.manifest_path(gcs_root, START)) == res.manifest
    assert read_dir(L.curated_dir(gcs_root, "samples", START)).num_rows == 1500
    assert read_dir(L.stats_dir(gcs_root, "user", START)).num_rows > 0

    # A re-run replaces the day: same files, no staging folders left behind.
    files = storage.list_files(storage.join(gcs_root, "curated"))
    again = run_ingest(ingest_config, START, gcs_root)
    assert again.manifest["sources"] == res.manifest["sources"]
    assert storage.list_files(storage.join(gcs_root, "curated")) == files
    assert not [f for f in storage.list_files_raw_gcs(gcs_root) if "/_tmp" in f]
