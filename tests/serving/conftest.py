"""A ready server shared by the protocol and hostile-input tests: real store, registry, uvicorn."""

from __future__ import annotations

import pytest
import serving_fixtures as F

from serving import Runtime, create_app


@pytest.fixture(scope="session")
def ready_world(tmp_path_factory):
    """One model version in production, a real Feast store, a live uvicorn on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("ready")
    cfg = F.serving_config(tmp, "serving.max_instances=50", "serving.max_rank_items=100")
    data, art = str(tmp / "data"), str(tmp / "art")
    F.build_store(cfg, data)
    F.publish(art, "taml", F.make_version(cfg, tmp / "models", "r1", seed=3))
    rt = Runtime(cfg, data, art)
    with F.running_server(create_app(rt)) as url:
        assert F.wait_until(lambda: rt.service.ready, 30), rt.status()
        yield {"cfg": cfg, "url": url, "rt": rt, "art": art, "data": data, "tmp": tmp}
