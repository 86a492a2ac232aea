"""The Redis password lives in the environment only: never in config, files a step writes, output, errors or logs."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import yaml
from redis_fixtures import PASSWORD_ENV

from components.features import build_features, feature_store
from components.features.store import FeatureStoreError, repo_config
from simulator.curated import SyntheticSpec, write_history
from taml.cli.main import main
from taml.core import secrets
from taml.core.config import ConfigError, load_config

DAY = dt.date(2026, 11, 2)


def _redis_cfg(tmp: Path, connection: str, *overrides: str):
    return load_config(
        profile="redis",
        env={},
        overrides=[
            f"paths.data_root={tmp / 'data'}",
            f"paths.artifact_root={tmp / 'art'}",
            "features.require_validation=false",
            f"features.redis_connection_string={connection}",
            *overrides,
        ],
    )


def _files_containing(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_redact_masks_known_values_and_password_shapes():
    secrets.remember("hunter2-xyz")
    assert secrets.redact("auth hunter2-xyz failed") == "auth *** failed"
    assert secrets.redact("h:6379,db=1,password=abc,ssl=true") == "h:6379,db=1,password=***,ssl=true"
    assert secrets.redact("redis://user:pa55@host:6379/0") == "redis://user:***@host:6379/0"
    assert secrets.redact("{'password': 'abc'}") == "{'password': '***'}"
    assert secrets.redact("no secret here, TAML_REDIS_PASSWORD names a variable") == (
        "no secret here, TAML_REDIS_PASSWORD names a variable"
    )


@pytest.mark.parametrize("where", ["set", "env", "file"])
def test_a_password_in_the_connection_string_is_refused_without_echoing_it(tmp_path, where, capsys):
    bad = "10.0.0.3:6379,password=Sup3rS3cret"
    if where == "set":
        with pytest.raises(ConfigError) as e:
            load_config(env={}, overrides=[f"features.redis_connection_string={bad}"])
    elif where == "env":
        with pytest.raises(ConfigError) as e:
            load_config(env={"TAML__FEATURES__REDIS_CONNECTION_STRING": bad})
    else:
        f = tmp_path / "prod.yaml"
        f.write_text(yaml.safe_dump({"features": {"redis_connection_string": bad}}))
        with pytest.raises(ConfigError) as e:
            load_config(env={}, files=[f])
    msg = str(e.value)
    assert "features.redis_connection_string" in msg and "redis_password_env" in msg
    assert "Sup3rS3cret" not in msg and "password=***" in msg
    # The command line says the same, and neither stdout nor stderr carries it.
    assert main(["config", "show", "--set", f"features.redis_connection_string={bad}"]) == 2
    out = capsys.readouterr()
    assert "Sup3rS3cret" not in out.out + out.err and "redis_password_env" in out.err


def test_config_show_names_the_variable_never_the_value(monkeypatch, capsys):
    monkeypatch.setenv(PASSWORD_ENV, "Sh0wMeN0t")
    assert main(["config", "show", "--profile", "redis"]) == 0
    out = capsys.readouterr().out
    assert "Sh0wMeN0t" not in out
    assert "redis_password_env: TAML_REDIS_PASSWORD" in out and "$TAML_REDIS_PASSWORD is set" in out
    assert yaml.safe_load(out)["features"]["online_store"] == "redis"
    monkeypatch.delenv(PASSWORD_ENV)
    assert main(["config", "show", "--profile", "redis"]) == 0
    assert "$TAML_REDIS_PASSWORD is not set" in capsys.readouterr().out


def test_files_a_step_writes_never_hold_the_password(tmp_path, redis_server, redis_password):
    """feature_store.yaml names ${TAML_REDIS_PASSWORD}; Feast's own loader expands it and connects."""
    root = tmp_path / "data"
    write_history(
        str(root), DAY - dt.timedelta(days=1), 2, SyntheticSpec(samples_per_day=300, users=30, items=10)
    )
    cfg = _redis_cfg(tmp_path, redis_server.connection_string(redis_server.fresh_db()))
    result = build_features(cfg, DAY, str(root))
    assert result.online_rows["user_profile"] == 30
    yaml_path = root / "feature_store" / "feature_store.yaml"
    written = yaml.safe_load(yaml_path.read_text())
    assert written["online_store"]["connection_string"].endswith(",password=${TAML_REDIS_PASSWORD}")
    assert _files_containing(tmp_path, redis_password) == []
    # The in-memory RepoConfig has the value (that is how Feast connects), the file only the name.
    assert redis_password in repo_config(cfg, str(root)).online_store.connection_string
    from feast import FeatureStore

    store = FeatureStore(fs_yaml_file=yaml_path)
    got = store.get_online_features(features=["user_profile:gender"], entity_rows=[{"user_id": 1}]).to_dict()
    assert got["gender"][0] is not None
    # Without a password on the server side nothing is referenced at all.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(PASSWORD_ENV)
        assert "password" not in repo_config(cfg, str(root), password_ref=True).online_store.connection_string


def test_errors_and_logs_never_carry_the_password(tmp_path, redis_server, redis_password, caplog, capsys):
    root = tmp_path / "data"
    cfg = _redis_cfg(tmp_path, redis_server.connection_string(redis_server.fresh_db()))
    # A library that logs what it connects with (message and traceback) is redacted too.
    with caplog.at_level(logging.INFO):
        feature_store(cfg, str(root))  # reads the password: from now on it is a known secret
        conn = repo_config(cfg, str(root)).online_store.connection_string
        logging.getLogger("some.library").warning("connecting with %s", conn)
        try:
            raise RuntimeError(f"could not use {conn}")
        except RuntimeError:
            logging.getLogger("some.library").exception("failed")
    assert redis_password not in caplog.text and "password=***" in caplog.text
    formatted = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert redis_password not in formatted and "RuntimeError: could not use" in formatted
    # Feast's own validation quotes its input: our wrapper redacts it.
    with pytest.raises(FeatureStoreError) as e:
        repo_config(
            _redis_cfg(tmp_path, redis_server.connection_string(), "features.project=bad name!"), str(root)
        )
    assert redis_password not in str(e.value)
    # A wrong password at the command line: one line naming the server, exit 2, no password anywhere.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, "Wr0ngPa55")
        code = main(
            ["features", "online", "--user", "1", "--items", "1", "--profile", "redis", "--data-root", str(root),
             "--set", f"features.redis_connection_string={redis_server.connection_string()}"]
        )  # fmt: skip
    out = capsys.readouterr()
    assert code == 2 and f"redis 127.0.0.1:{redis_server.port} db 0" in out.err
    assert "Wr0ngPa55" not in out.err + out.out and redis_password not in out.err + out.out
