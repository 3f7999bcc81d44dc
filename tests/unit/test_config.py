from pathlib import Path

import pytest

from pipelines.core import config
from pipelines.core.exceptions import ConfigError


@pytest.mark.parametrize("env", ["local", "ci", "compose"])
def test_every_env_file_validates(env: str) -> None:
    settings = config.load(env)
    assert settings.env == env
    assert settings.kafka.topic("smoke").name


def test_local_and_ci_do_not_share_ports_or_folders() -> None:
    local, ci = config.load("local"), config.load("ci")
    assert local.kafka.port != ci.kafka.port
    assert local.mongo.port != ci.mongo.port
    assert local.stack.home != ci.stack.home
    assert local.mongo.database != ci.mongo.database


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("env: x\nkafka:\n  bootstrap_server: 1.2.3.4:9092\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server: unknown key"):
        config.load("x", p)


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("env: x\nspark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions"):
        config.load("x", p)


def test_missing_env_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        config.load("nope")


def test_environment_points_at_external_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setenv("MONGO_URI", "mongodb://db.example:27017/")
    s = config.load("local")
    assert s.kafka.bootstrap_servers == "broker.example:9092" and not s.kafka.embedded
    assert s.mongo.uri == "mongodb://db.example:27017/" and not s.mongo.embedded


def test_mongo_port_parsing() -> None:
    m = config.MongoSettings(uri="mongodb://user:pw@host:27999/db?x=1")
    assert m.port == 27999
    assert config.MongoSettings(uri="mongodb://host/").port == 27017


def test_relative_paths_resolve_against_repo_root() -> None:
    s = config.load("local")
    assert s.resolve(Path("outputs/x")) == config.REPO_ROOT / "outputs/x"


def test_spark_conf_reaches_the_session_over_tarmacs_own(tmp_path: Path) -> None:
    from pipelines.clients.spark import session_conf

    p = tmp_path / "x.yaml"
    p.write_text("env: x\nspark:\n  driver_memory: 1g\n  conf:\n    spark.executor.cores: 2\n"
                 "    spark.eventLog.enabled: true\n    spark.driver.memory: 3g\n"
                 "    spark.hadoop.fs.s3a.endpoint: http://minio:9000\n")  # fmt: skip
    conf = session_conf(config.load("x", p))
    assert conf["spark.executor.cores"] == "2" and conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert conf["spark.driver.memory"] == "3g"  # the map wins over Tarmac's own
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_every_table_the_session_creates_gets_the_log_s_retention_and_checkpoint_interval(
    tmp_path: Path,
) -> None:
    """Delta's defaults (30 days, a checkpoint every 10 commits) would keep ~18 GB of log at
    the production clock; the session gives new tables Tarmac's, and a retention under
    VACUUM's 7 days plus 2 (what VACUUM LITE reads back) is refused."""
    from pipelines.clients.spark import session_conf

    conf = session_conf(config.load("local"))
    prefix = "spark.databricks.delta.properties.defaults."
    assert conf[prefix + "logRetentionDuration"] == "interval 10 days"
    assert conf[prefix + "checkpointInterval"] == "100"
    p = tmp_path / "x.yaml"
    p.write_text("env: x\nspark:\n  delta_log_retention_days: 30\n"
                 "  delta_checkpoint_interval: 50\n")  # fmt: skip
    assert session_conf(config.load("x", p))[prefix + "logRetentionDuration"] == "interval 30 days"
    p.write_text("env: x\nspark:\n  delta_log_retention_days: 7\n")
    with pytest.raises(ConfigError, match="delta_log_retention_days"):
        config.load("x", p)


def test_spark_conf_takes_spark_properties_only(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("env: x\nspark:\n  conf:\n    executor.cores: 2\n")
    with pytest.raises(ConfigError, match=r"spark\.conf.*'executor\.cores'.*start"):
        config.load("x", p)


def test_a_container_s_driver_address_and_the_spark_ui_come_from_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compose gives each driver container its name (the executors on spark-worker reach the
    driver there, not on its loopback) and turns the Spark UI on when asked; by default
    neither is set and the driver stays on this machine's loopback."""
    from pipelines.clients.spark import session_conf

    plain = session_conf(config.load("compose"))
    assert "spark.driver.host" not in plain and plain["spark.ui.enabled"] == "false"
    monkeypatch.setenv("TARMAC_SPARK_DRIVER_HOST", "runner")
    monkeypatch.setenv("TARMAC_SPARK_UI", "True")
    settings = config.load("compose")
    assert settings.spark.driver_host == "runner" and settings.spark.ui
    conf = session_conf(settings)
    assert conf["spark.driver.host"] == "runner" and conf["spark.driver.bindAddress"] == "0.0.0.0"
    assert conf["spark.ui.enabled"] == "true"
    monkeypatch.setenv("TARMAC_SPARK_UI", "maybe")
    with pytest.raises(ConfigError, match=r"spark\.ui"):
        config.load("compose")
