"""Every error Tarmac raises on purpose. Messages say what went wrong and what to do next.

Also the one list of what a service that went away looks like (:data:`SERVICE_ERRORS`): the
runner retries those failures (:data:`TRANSIENT_ERRORS`), a job names the service from them
(:func:`unavailable`)."""

from __future__ import annotations

from typing import Any, Protocol


class TarmacError(Exception):
    """Base of all Tarmac errors; the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(TarmacError):
    """Parameters file missing, unreadable, or with an unknown key or a wrong type."""

    exit_code = 2


class ProvisionError(TarmacError):
    """A component of the local stack could not be fetched or built (mvn, go, pip)."""

    exit_code = 3


class ServiceStartError(TarmacError):
    """A local service did not answer in time; the message names its log file."""

    exit_code = 4


class ServiceUnavailableError(TarmacError):
    """Kafka or MongoDB cannot be reached; start the stack or fix the address."""

    exit_code = 5


class SlidesError(TarmacError):
    """The deck could not be built: a missing tool, a failed step, an inconsistent result."""

    exit_code = 11


class ReconcileError(TarmacError):
    """A job's counts do not add up: rows in != accepted + rejected, or two independent counts
    of one input differ (a landed file's rows as its check counted them and as Spark read them;
    a micro-batch's Kafka offsets and the rows it parsed: ``core/reconcile.py``)."""

    exit_code = 12


class StreamProcessError(TarmacError):
    """A child process of a long-lived ``flights_stream`` (its lake path,
    ``jobs/path_process.py``) ended while the live board ran: the job fails, so that its
    supervisor starts every query again."""

    exit_code = 13
    NAMES = {"lake": "the lake path's"}

    def __init__(self, pid: int, code: int, path: str = "lake") -> None:
        self.pid, self.code, self.path = pid, code, path
        how = f"exit code {code}" if code >= 0 else f"signal {-code}"
        super().__init__(
            f"{self.NAMES.get(path, path)} process (pid {pid}) of flights_stream ended ({how}): "
            "its last lines are above in this job's log; the service supervisor restarts the "
            "stream, or run `tarmac service start flights_stream`"
        )


class ValidationFailure(TarmacError):
    """Input data did not pass validation (used where a whole input is refused)."""

    exit_code = 6


class LandingError(TarmacError):
    """A landing-zone contract was broken: a file changed or vanished while handled, a commit
    without a claim, or row counts that do not add up."""

    exit_code = 7


class JobLockedError(TarmacError):
    """The job already runs for this env (its lock is held); this run did nothing."""

    exit_code = 8


class RunOutcome(Protocol):
    """What a failed run carries: :class:`pipelines.orchestration.runner.RunResult` (named
    here by its shape: the core imports no later stage)."""

    @property
    def attempts(self) -> list[dict[str, Any]]: ...  # its ledger documents, one per attempt

    @property
    def status(self) -> str: ...  # the last attempt's (a ``RunStatus``)

    @property
    def run_id(self) -> str: ...  # the last attempt's


class JobFailedError(TarmacError):
    """A job notebook raised; the message names the cell, the output notebook and the ledger.
    ``result``: the run's attempts as the ledger has them, given when raised (papermill's
    ``PapermillExecutionError`` carries its cell and error the same way)."""

    exit_code = 9

    def __init__(self, message: str, result: RunOutcome) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[JobFailedError], tuple[str, RunOutcome]]:
        """Pickled with its result (``args`` holds the message only)."""
        return type(self), (str(self), self.result)


class JobTimeoutError(JobFailedError):
    """A job notebook ran past its timeout and was interrupted (then killed if it hung)."""

    exit_code = 10


# The errors of each service's Python client that mean "not reachable right now" (pymongo,
# kafka-python): by name, as a notebook's error reports them (its ``ename``) and as a Spark
# wrapper's message quotes them.
SERVICE_ERRORS = {
    "MongoDB": ("ServerSelectionTimeoutError", "AutoReconnect", "NetworkTimeout",
                "ConnectionFailure"),
    "Kafka": ("NoBrokersAvailable", "KafkaTimeoutError", "KafkaConnectionError"),
}  # fmt: skip
# A failure the runner retries: ours (Kafka or MongoDB does not answer) or a client's above.
# Spark wraps an error raised in foreachBatch in one of SPARK_WRAPPERS: that counts when the
# wrapped message names one of these (``runner.is_transient``).
TRANSIENT_ERRORS = frozenset(
    {"ServiceUnavailableError", *(name for names in SERVICE_ERRORS.values() for name in names)}
)
SPARK_WRAPPERS = frozenset(
    {"StreamingQueryException", "Py4JJavaError", "PythonException", "SparkException"}
)
# What an error from deep inside Spark says when a service went away, by service: its
# client's error names, and what the JVM's side says of the same failure.
_SIGNS = {
    "MongoDB": (*SERVICE_ERRORS["MongoDB"], "Connection refused"),
    "Kafka": (*SERVICE_ERRORS["Kafka"], "Timed out waiting for a node", "DisconnectException",
              "Broker may not be available"),
}  # fmt: skip


def unavailable(exc: BaseException, addresses: dict[str, str]) -> ServiceUnavailableError | None:
    """``exc`` (often a Spark wrapper around a worker's traceback) as a
    :class:`ServiceUnavailableError` naming the service that went away and its address
    (``addresses``: service -> address), or None if it is not about a service."""
    if isinstance(exc, ServiceUnavailableError):
        return exc
    text = f"{exc.__class__.__name__}: {exc}"
    for service in ("MongoDB", "Kafka"):
        if any(sign in text for sign in _SIGNS[service]):
            lines = [line.strip() for line in text.splitlines()
                     if any(sign in line for sign in _SIGNS[service])]  # fmt: skip
            first = lines[-1] if lines else ""  # the innermost: the client's own message
            return ServiceUnavailableError(
                f"{service} at {addresses.get(service, '?')} stopped answering during the job "
                f"({first[:300]}); start it again (make stack-up) and rerun: the rerun converges"
            )
    return None


class AlertError(TarmacError):
    """An alert operation was refused: an unknown alert id (acknowledge), an alert document
    that is not one (the ``alerts`` collection written by something else)."""

    exit_code = 14


class NotificationError(TarmacError):
    """A notification of an alert (webhook, mail) failed every attempt of this run. The alert
    itself is kept and the failure recorded on it; the next run tries again."""

    exit_code = 15


class ReplayError(TarmacError):
    """A part of a replay failed (a producer process, the files written to the landing zone);
    the message says which and why. What was sent is kept: run the same command again and it
    resumes after each part's saved position."""

    exit_code = 16
