"""Parameters: one YAML per environment under ``parameters/``, validated before anything runs.

``load("local")`` reads ``parameters/local.yaml``, applies the environment-variable overrides
(``KAFKA_BOOTSTRAP_SERVERS``, ``MONGO_URI``) and returns a frozen :class:`Settings`. An unknown
key or a wrong type raises :class:`~pipelines.core.exceptions.ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.core.exceptions import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def outputs_dir() -> Path:
    """Root of runs/, logs/ and locks/ (``$TARMAC_OUTPUTS_DIR``, default ``outputs/``)."""
    return Path(os.environ.get("TARMAC_OUTPUTS_DIR") or REPO_ROOT / "outputs")


PARAMETERS_DIR = Path(os.environ.get("TARMAC_PARAMETERS_DIR", REPO_ROOT / "parameters"))
DEFAULT_ENV = os.environ.get("TARMAC_ENV", "local")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSettings(_Model):
    home: Path = Path("outputs/stack/local")
    cache: Path = Field(
        default_factory=lambda: Path(
            os.environ.get("TARMAC_CACHE", Path.home() / ".cache" / "tarmac")
        )
    )
    kafka_version: str = "4.1.1"
    log4j_version: str = "2.24.3"
    ferretdb_version: str = "v1.24.2"
    start_timeout_s: float = 90.0


DAY_MS = 24 * 3600 * 1000
GIB = 1024**3


class TopicSettings(_Model):
    """A topic, and the retention Kafka gives it when Tarmac creates it (``retention.ms``,
    ``retention.bytes``: whichever is reached first deletes the oldest segment of a partition;
    the broker itself keeps everything, ``log.retention.hours=-1``). The defaults keep far more
    than a replay needs: a day of 2013 is 163 KB of log segments (zstd, bench/housekeeping.py),
    a year ~60 MB, and the stream reads an event seconds after it arrived; 30 days leave room
    for a stream stopped for weeks. A topic that exists already keeps its configs
    (docs/operations.md)."""

    name: str
    partitions: int = Field(default=1, ge=1)
    # its producers use Kafka transactions (ours do not): their commit markers take offsets,
    # so the stream's per-batch reconciliation allows gaps (``core/reconcile.py``)
    transactional: bool = False
    retention_ms: int = Field(default=30 * DAY_MS, ge=3_600_000)  # >= 1 h: time to restart
    # per partition; Kafka deletes whole segments (1 GiB by default), so keep it above that
    retention_bytes: int = Field(default=2 * GIB, ge=1024**2)

    def configs(self) -> dict[str, str]:
        """The topic configs given at creation (Kafka's names, string values)."""
        return {
            "retention.ms": str(self.retention_ms),
            "retention.bytes": str(self.retention_bytes),
        }


class KafkaSettings(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"
    embedded: bool = True
    controller_port: int = 9093
    heap: str = "768m"
    topics: dict[str, TopicSettings] = Field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])

    def topic(self, key: str) -> TopicSettings:
        try:
            return self.topics[key]
        except KeyError:
            raise ConfigError(
                f"no topic '{key}' under kafka.topics; add it to the parameters file"
            ) from None


class MongoSettings(_Model):
    uri: str = "mongodb://127.0.0.1:27017/"
    database: str = "tarmac"
    embedded: bool = True
    # what the dashboard reads with: where auth is on, a user with only the ``read`` role on
    # the serving database (docker-compose creates one); None = ``uri``
    reader_uri: str | None = None

    @property
    def safe_uri(self) -> str:
        """``uri`` with its password masked, for messages and logs."""
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", self.uri)

    @property
    def port(self) -> int:
        hostport = self.uri.split("://", 1)[1].split("/", 1)[0].split(",")[0]
        hostport = hostport.rsplit("@", 1)[-1]
        return int(hostport.rsplit(":", 1)[1]) if ":" in hostport else 27017


class SparkSettings(_Model):
    """The Spark application every job, notebook and spark-submit run builds
    (``pipelines.clients.spark``). ``conf``: any further Spark property, passed to the session
    and to ``spark-submit --conf`` as given, winning over Tarmac's own (executor memory and
    cores, ``spark.hadoop.fs.s3a.*`` for an object-store lake, ``spark.eventLog.*``, JVM
    options)."""

    master: str = "local[*]"
    shuffle_partitions: int = Field(default=4, ge=1)
    driver_memory: str = "2g"
    ui: bool = False  # the Spark UI (port 4040, or the next free one); $TARMAC_SPARK_UI wins
    # the address the executors reach this driver at, when it is not this machine's loopback
    # (a container's hostname in compose: ``spark.driver.host``, bound on every interface);
    # $TARMAC_SPARK_DRIVER_HOST wins (compose sets it per container)
    driver_host: str | None = None
    # the driver's JVM maps a class archive built once per Python environment by ``stack up``:
    # a job's JVM starts on ~30 % fewer CPU-seconds (``pipelines.clients.cds``)
    class_data_sharing: bool = True
    # the ``_delta_log`` of every lake table created from now on (housekeeping sets them on
    # the tables that exist: step ``delta_log``). At the production clock the stream's lake
    # path commits each of six tables about 1,000 times a day, each commit ~10 KB of log and
    # every ``checkpointInterval`` commits a checkpoint listing every live file of the table
    # (~1.5 MB for clean/flights with a year loaded): with Delta's defaults (30 days, 10)
    # that log grows to ~18 GB and ~800,000 files (``bench/lake_growth.py``). The retention
    # is at least VACUUM's 7 days plus 2: a daily ``VACUUM LITE`` reads the log back to the
    # oldest version its last run kept (~8 days), and Delta refuses it (a FULL, 10x dearer,
    # runs instead) once that part of the log is gone.
    delta_log_retention_days: int = Field(default=10, ge=9)
    delta_checkpoint_interval: int = Field(default=100, ge=10)
    conf: dict[str, str] = Field(default_factory=dict)

    def delta_table_properties(self) -> dict[str, str]:
        """The Delta table properties of :attr:`delta_log_retention_days` and
        :attr:`delta_checkpoint_interval` (Delta's names and values)."""
        return {
            "delta.logRetentionDuration": f"interval {self.delta_log_retention_days} days",
            "delta.checkpointInterval": str(self.delta_checkpoint_interval),
        }

    @field_validator("conf", mode="before")
    @classmethod
    def _spark_properties(cls, conf: object) -> object:
        """Keys are Spark properties; YAML numbers and booleans become Spark's text
        (``2`` -> ``"2"``, ``true`` -> ``"true"``)."""
        if not isinstance(conf, dict):
            return conf
        if bad := sorted(str(k) for k in conf if not str(k).startswith("spark.")):
            raise ValueError(f"{bad} are not Spark properties (each starts with 'spark.')")
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()}


class ServingSettings(_Model):
    """What MongoDB serves of the lake. The live board and "weather now" read the hours around
    the replay clock only, so flight buckets and weather hours older than ``board_hours``
    before the newest event are kept in the lake and not (re)written to MongoDB; None serves
    every hour (tests compare every document with an independent computation)."""

    board_hours: int | None = Field(default=48, ge=1)


class DashboardSettings(_Model):
    """How Voila serves the page (``pipelines.stack.voila``): each open page costs a kernel
    (~210 MB); a kernel no page has been connected to for ``kernel_idle_s`` seconds is stopped,
    checked every ``cull_interval_s`` seconds: a closed tab, a crashed browser, a laptop put to
    sleep, a lost network. The page's own refreshes do not keep it alive; a page still open
    is never culled. ``pool_size`` kernels are kept preheated (the notebook already run, the
    page drawn, ~210 MB each): a visit takes one and the pool is filled again; 0 starts a
    kernel per visit (bench/dashboard.py: the first complete render, docs/dashboard.md)."""

    kernel_idle_s: int = Field(default=600, ge=1)
    cull_interval_s: int = Field(default=60, ge=1)
    pool_size: int = Field(default=1, ge=0, le=8)


class AlertRuleSettings(_Model):
    """The thresholds of the alert rules (``pipelines/serving/alerts/rules.py``), shared by the
    ``alerts`` job and the page's "Needs attention" (docs/dashboard.md, "Alerts")."""

    not_departed_min: int = Field(default=15, ge=0, description="past its time, not departed")
    not_departed_red_min: int = Field(default=45, ge=0, description="... red from")
    late_min: int = Field(default=60, ge=0, description="a departure this late (min) alerts")
    late_window_min: int = Field(default=60, ge=1, description="departures of the last N min")
    above_usual_min: float = Field(default=10.0, ge=0, description="avg delay above the usual")
    above_usual_departed: int = Field(default=5, ge=1, description="departures needed first")
    usual_min_days: int = Field(default=3, ge=1, description="days of that weekday loaded")
    airline_delay_min: float = Field(default=30.0, ge=0, description="a carrier's avg delay")
    airline_departed: int = Field(default=10, ge=1, description="its departures needed first")
    delay_risk_min: float = Field(default=0.7, ge=0, le=1, description="delay_risk from")
    delay_risk_red: float = Field(default=0.9, ge=0, le=1, description="delay_risk red from")
    delay_risk_ahead_min: int = Field(default=60, ge=1, le=60, description="look-ahead (min)")


class WebhookSettings(_Model):
    """A JSON POST per alert transition (``url``: None = no webhook; ``$TARMAC_ALERT_WEBHOOK_URL``
    wins, so a URL carrying a token need not be in the file)."""

    url: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    attempts: int = Field(default=3, ge=1, description="tries per run (5xx, 429, network)")
    backoff_s: float = Field(default=1.0, ge=0, description="wait before try k: backoff * 2**(k-2)")
    headers: dict[str, str] = Field(default_factory=dict)


class EmailSettings(_Model):
    """A mail per alert transition over SMTP (``host``: None = no mail). The password is never
    in the file: ``$TARMAC_SMTP_PASSWORD`` (used with ``user``)."""

    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    user: str | None = None
    sender: str = "tarmac@localhost"
    to: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=2, ge=1)
    backoff_s: float = Field(default=1.0, ge=0)


class AlertSettings(_Model):
    """The alerts: the rules' thresholds, and where a transition (opened, closed) is sent. A
    notification that failed every attempt of a run is tried again by the next runs, until
    ``give_up_after`` attempts in all (then ``abandoned`` on the alert)."""

    rules: AlertRuleSettings = Field(default_factory=AlertRuleSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    notify_close: bool = True
    give_up_after: int = Field(default=30, ge=1)


class PathSettings(_Model):
    # the streaming queries' checkpoints: like the lake, a local path or any Hadoop URI
    checkpoints: str = "outputs/checkpoints/local"
    data: Path = Path("outputs/data/local")  # landing/, archive/, quarantine/, replay state
    # the Delta Lake lakehouse: a local path (relative to the repository) or any Hadoop URI
    # (hdfs://, s3a://, file://) that every Spark node reaches
    lake: str = "outputs/lake/local"


class ReplaySettings(_Model):
    """Defaults of ``tarmac replay``; every CLI option overrides one of these."""

    start: datetime = datetime(2013, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2014, 1, 1, tzinfo=UTC)
    speed: float = Field(default=3600.0, gt=0)  # seconds of 2013 per wall-clock second
    max_rate: float | None = Field(default=None, gt=0)  # events per second, None = unlimited
    catch_up: bool = False  # no pacing at all
    board_lead_minutes: int = Field(default=120, ge=0)  # `scheduled` this long before departure
    checkpoint_every: int = Field(default=5000, ge=1)  # events between flush + position save
    workers: int = Field(default=1, ge=1, le=16)  # producer processes in catch-up mode

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class Settings(_Model):
    env: str
    stack: StackSettings = Field(default_factory=StackSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    def for_reader(self) -> Settings:
        """A copy that connects with ``mongo.reader_uri`` (the dashboard's read-only user)."""
        if not self.mongo.reader_uri:
            return self
        mongo = self.mongo.model_copy(update={"uri": self.mongo.reader_uri, "embedded": False})
        return self.model_copy(update={"mongo": mongo})

    def isolated(self, tag: str, folder: Path, database: str | None = None) -> Settings:
        """A copy with its own topics (``<name>.<tag>``), data and checkpoint folders under
        ``folder`` and, if given, its own database: for tests and benchmarks."""
        topics = {
            key: topic.model_copy(update={"name": f"{topic.name}.{tag}"})
            for key, topic in self.kafka.topics.items()
        }
        update: dict[str, Any] = {
            "kafka": self.kafka.model_copy(update={"topics": topics}),
            "paths": self.paths.model_copy(
                update={
                    "data": folder / "data",
                    "checkpoints": str(folder / "checkpoints"),
                    "lake": str(folder / "lake"),
                }
            ),
        }
        if database:
            update["mongo"] = self.mongo.model_copy(update={"database": database})
        return self.model_copy(update=update)

    def write(self, folder: Path) -> Path:
        """Write these settings as ``<folder>/<env>.yaml`` (a subprocess then reads them with
        ``TARMAC_PARAMETERS_DIR=<folder>``); the cache location stays the reader's own."""
        folder.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        data["stack"].pop("cache", None)
        path = folder / f"{self.env}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    @property
    def lake_root(self) -> str:
        """``paths.lake`` as Spark reads it: a URI as is, a path made absolute."""
        return self._uri(self.paths.lake)

    @property
    def checkpoint_root(self) -> str:
        """``paths.checkpoints`` as Spark reads it: a URI as is, a path made absolute."""
        return self._uri(self.paths.checkpoints)

    def _uri(self, where: str) -> str:
        if "://" in where:
            return where.rstrip("/")
        return str(self.resolve(Path(where)))

    def resolve(self, path: Path) -> Path:
        """A path from the parameters, made absolute against the repository root."""
        path = Path(os.path.expanduser(path))
        return path if path.is_absolute() else REPO_ROOT / path


def _apply_env_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """External services named in the environment win over the file, and are never started."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        raw.setdefault("kafka", {}).update(bootstrap_servers=bootstrap, embedded=False)
    if uri := os.environ.get("MONGO_URI"):
        raw.setdefault("mongo", {}).update(uri=uri, embedded=False)
    if reader := os.environ.get("MONGO_READER_URI"):
        raw.setdefault("mongo", {}).update(reader_uri=reader)
    if db := os.environ.get("MONGO_DATABASE"):
        raw.setdefault("mongo", {}).update(database=db)
    if hook := os.environ.get("TARMAC_ALERT_WEBHOOK_URL"):
        raw.setdefault("alerts", {}).setdefault("webhook", {}).update(url=hook)
    if ui := os.environ.get("TARMAC_SPARK_UI"):  # "1"/"true"/"0"/"false": checked as a bool
        raw.setdefault("spark", {}).update(ui=ui.strip().lower())
    if host := os.environ.get("TARMAC_SPARK_DRIVER_HOST"):
        raw.setdefault("spark", {}).update(driver_host=host)
    return raw


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def available_envs() -> list[str]:
    return sorted(p.stem for p in PARAMETERS_DIR.glob("*.yaml"))


def load(env: str | None = None, path: Path | None = None) -> Settings:
    """Read, override and validate the parameters of ``env`` (default ``$TARMAC_ENV`` or local)."""
    env = env or DEFAULT_ENV
    path = path or PARAMETERS_DIR / f"{env}.yaml"
    if not path.exists():
        raise ConfigError(
            f"no parameters file for env '{env}' at {path}; "
            f"choose one of {available_envs()} or create it"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    raw.setdefault("env", env)
    try:
        return Settings.model_validate(_apply_env_overrides(raw))
    except ValidationError as exc:
        raise ConfigError(f"invalid parameters in {path}:\n{_format_errors(exc)}") from exc
