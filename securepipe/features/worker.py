"""Step 4 at production shape: S3 ObjectCreated events through SQS to ingest workers.

Uploads arrive all day, so ingest runs as it would on AWS: the raw bucket sends an event for
every object created under ``raw/`` to an SQS queue
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/ways-to-add-notification-config-to-bucket.html),
and any number of workers (threads in a process, processes, containers) long-poll that queue.
Each message runs through :func:`securepipe.features.ingest.ingest_one`, the batch path's own
idempotent, crash-safe ingest, so the worker adds no new way to lose an upload:

* a message is **deleted only after** its sample's features are verified stored, or the upload
  is quarantined with its reason (or the sample is already done: a duplicate delivery); the
  deletes of finished messages go out in batches of up to ten (DeleteMessageBatch, after at
  most a second's wait), one SQS call for several samples;
* while a sample is in flight the worker **extends the message's visibility** (a heartbeat of
  ChangeMessageVisibility), so a slow sample is never handed to a second worker meanwhile;
* a sample that fails is left for another attempt (its message becomes visible again after a
  short back-off); after ``max_receives`` receives, or at once for a message that can never
  succeed (not an S3 event, a key that is not ``raw/<contractor>/<sample_id>``), the worker
  sends it to the **dead-letter queue with its reason** (message attributes
  :data:`ATTR_REASON`, :data:`ATTR_RECEIVES`) and an audit record, then deletes it. The queue's
  own redrive policy (``maxReceiveCount`` one above) is the backstop for a worker that dies on
  a message: SQS then moves it with no reason, which is itself the reason;
* duplicates and out-of-order deliveries are harmless: ingest always reads the key's current
  state (the event's version is only a hint), and its conditional writes keep one feature
  object however many workers race on a sample;
* a bounded number of samples are in flight per worker (threads: the AWS calls release the
  GIL, so the latency of one sample is hidden behind the others), sharing one set of clients
  made at start-up whose connection pools hold a connection per sample in flight (botocore's
  default of 10 would open and close a connection per call beyond the tenth);
* a stop request (SIGTERM, as ECS sends before SIGKILL; or a ``threading.Event``) stops
  receiving, lets in-flight samples finish for up to ``drain_s``, and releases any message
  still unfinished (visibility 0) so another worker takes it at once.

SQS references: visibility timeout
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html,
dead-letter queues and ``maxReceiveCount``
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html,
long polling
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html.
The event's object key is URL-encoded (spaces as ``+``):
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from securepipe.encryption.upload import RAW_PREFIX, sample_key
from securepipe.errors import InvalidParameterError
from securepipe.features.extract import one_blas_thread
from securepipe.features.ingest import (
    AUDIT,
    IngestConfig,
    IngestItem,
    SampleOutcome,
    ingest_one,
    prepare_clients,
)

LOG = logging.getLogger(__name__)
#: Message attribute on a dead-lettered message: why the worker gave up on it.
ATTR_REASON = "securepipe-reason"
#: Message attribute on a dead-lettered message: how often it had been received.
ATTR_RECEIVES = "securepipe-receives"
#: Message attribute on a dead-lettered message: the original message's id.
ATTR_SOURCE_ID = "securepipe-source-message-id"


@dataclass(frozen=True)
class IngestQueues:
    """The ingest queue and its dead-letter queue (URLs and ARNs)."""

    queue_url: str
    queue_arn: str
    dead_letter_url: str
    dead_letter_arn: str


def setup_notifications(session: boto3.Session, raw_bucket: str, *,
                        queue_name: str = "securepipe-ingest", max_receives: int = 3,
                        visibility_timeout_s: int = 60) -> IngestQueues:
    """Create the ingest queue and its dead-letter queue, and point the raw bucket's
    ObjectCreated events under ``raw/`` at the queue.

    Wraps CreateQueue (a ``RedrivePolicy`` with ``maxReceiveCount = max_receives + 1``, the
    backstop behind the worker's own dead-lettering), SetQueueAttributes (a queue policy that
    lets only this bucket's S3 events in, ``aws:SourceArn``) and
    PutBucketNotificationConfiguration, which *replaces* the bucket's whole notification
    configuration. https://docs.aws.amazon.com/AmazonS3/latest/userguide/ways-to-add-notification-config-to-bucket.html
    """
    if not 1 <= max_receives <= 999:
        raise InvalidParameterError("max_receives must be in [1, 999]")
    if not 1 <= visibility_timeout_s <= 43_200:
        raise InvalidParameterError("visibility_timeout_s must be in [1, 43200]")
    sqs = session.client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{queue_name}-dead-letter", Attributes={
        "MessageRetentionPeriod": str(14 * 24 * 3600), "SqsManagedSseEnabled": "true"})["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = sqs.create_queue(QueueName=queue_name, Attributes={
        "VisibilityTimeout": str(visibility_timeout_s),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": max_receives + 1}),
    })["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3ObjectCreatedFromTheRawBucketOnly",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{raw_bucket}"}},
        }]})})
    session.client("s3").put_bucket_notification_configuration(
        Bucket=raw_bucket, NotificationConfiguration={"QueueConfigurations": [{
            "Id": "securepipe-ingest",
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*"],
            # only uploads: the quarantine copies the pipeline writes must not come back
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{RAW_PREFIX}/"}]}},
        }]})
    return IngestQueues(queue_url, queue_arn, dlq_url, dlq_arn)


def _queue_arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


class PoisonMessage(Exception):
    """A message that can never be processed; ``reason`` says why (kept inside this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_event(body: str, raw_bucket: str) -> list[tuple[str, str]]:
    """The ``(contractor, sample_id)`` pairs an S3 event message names; ``[]`` for S3's test
    event. Raises :class:`PoisonMessage` for anything else (not JSON, not an S3 ObjectCreated
    record, another bucket, a key that is not exactly ``raw/<contractor>/<sample_id>``)."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise PoisonMessage("not-json") from None
    if not isinstance(doc, dict):
        raise PoisonMessage("not-an-s3-event")
    if doc.get("Event") == "s3:TestEvent" and "Records" not in doc:
        return []   # sent once when the configuration is written
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        raise PoisonMessage("not-an-s3-event")
    found: list[tuple[str, str]] = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3" or not str(
                record.get("eventName", "")).startswith("ObjectCreated:"):
            raise PoisonMessage("not-an-s3-event")
        s3 = record.get("s3")
        bucket_doc = s3.get("bucket") if isinstance(s3, dict) else None
        object_doc = s3.get("object") if isinstance(s3, dict) else None
        if not isinstance(bucket_doc, dict) or not isinstance(object_doc, dict):
            raise PoisonMessage("not-an-s3-event")
        if bucket_doc.get("name") != raw_bucket:
            raise PoisonMessage("wrong-bucket")
        raw_key = object_doc.get("key")
        if not isinstance(raw_key, str):
            raise PoisonMessage("bad-key")
        key = unquote_plus(raw_key)
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != RAW_PREFIX:
            raise PoisonMessage("bad-key")
        try:
            if sample_key(parts[1], parts[2]) != key:
                raise PoisonMessage("bad-key")
        except InvalidParameterError:
            raise PoisonMessage("bad-key") from None
        if (parts[1], parts[2]) not in found:
            found.append((parts[1], parts[2]))
    return found


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker polls. Checked when built.

    :param queue_url: the ingest queue (:func:`setup_notifications`).
    :param dead_letter_url: where messages the worker gives up on go, with their reason.
    :param concurrency: samples in flight at once in this worker (threads), and the connections
        each of its clients keeps. A sample is a chain of about a second of AWS round trips
        and a few ms of CPU, so clips/s per worker is at most ``concurrency`` / that second
        until the CPU is busy: 8 suits a small task; ``python -m benchmarks ingest`` runs 32.
    :param max_receives: receives after which a failing message is dead-lettered.
    :param visibility_timeout_s: how long a received message stays hidden; the heartbeat
        extends it every third of that while the sample is in flight.
    :param wait_s: long-poll wait per ReceiveMessage (20 is SQS's maximum and cheapest).
    :param retry_delay_s: a failed sample's message becomes visible again after this.
    :param idle_exit_s: stop once nothing was received and nothing is in flight for this long
        (``None``: run until stopped; a backfill or a test sets it).
    :param drain_s: on stop, how long in-flight samples may take before their messages are
        released.
    :param max_messages: stop after this many messages have been received and handled (a
        bounded run: a backfill slice, a benchmark); ``None``: no bound.
    """

    queue_url: str
    dead_letter_url: str
    concurrency: int = 8
    max_receives: int = 3
    visibility_timeout_s: int = 60
    wait_s: int = 20
    retry_delay_s: int = 5
    idle_exit_s: float | None = None
    drain_s: float = 25.0
    max_messages: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 256:
            raise InvalidParameterError("concurrency must be in [1, 256]")
        if not 1 <= self.max_receives <= 999:
            raise InvalidParameterError("max_receives must be in [1, 999]")
        if not 3 <= self.visibility_timeout_s <= 43_200:
            raise InvalidParameterError("visibility_timeout_s must be in [3, 43200]")
        if not 0 <= self.wait_s <= 20:
            raise InvalidParameterError("wait_s must be in [0, 20] (SQS's long-poll range)")
        if not 0 <= self.retry_delay_s <= self.visibility_timeout_s:
            raise InvalidParameterError("retry_delay_s must be in [0, visibility_timeout_s]")
        if self.idle_exit_s is not None and self.idle_exit_s < 0:
            raise InvalidParameterError("idle_exit_s must be >= 0 or None")
        if self.max_messages is not None and self.max_messages < 1:
            raise InvalidParameterError("max_messages must be >= 1 or None")


@dataclass
class WorkerReport:
    """What one worker did: every sample outcome, and what became of every message."""

    outcomes: list[SampleOutcome] = field(default_factory=list)
    messages: int = 0
    deleted: int = 0
    dead_lettered: int = 0
    retried: int = 0
    released: int = 0
    stopped_by: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: str) -> int:
        with self._lock:
            return sum(o.status == status for o in self.outcomes)

    def summary(self) -> dict[str, int | str]:
        """Counts for printing or JSON."""
        with self._lock:
            statuses = [o.status for o in self.outcomes]
        return {"messages": self.messages, "deleted": self.deleted,
                "dead_lettered": self.dead_lettered, "retried": self.retried,
                "released": self.released,
                **{s: statuses.count(s) for s in ("processed", "quarantined", "missing",
                                                   "failed")},
                "stopped_by": self.stopped_by}

    def _add(self, name: str, outcomes: list[SampleOutcome] | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if outcomes:
                self.outcomes.extend(outcomes)


class _Deleter:
    """Deletes the messages of finished samples in batches: SQS DeleteMessageBatch, up to ten
    receipt handles a call, each entry succeeding or failing on its own
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessageBatch.html).

    A message waits here at most ``max_delay_s`` (or until ten are waiting): never long enough
    to become visible again, and a crash meanwhile only redelivers a finished sample, which
    ingest reports as done again (its features verified, its raw gone). A failed delete is
    left the same way, for redelivery.
    """

    BATCH = 10

    def __init__(self, sqs: Any, settings: WorkerSettings, report: WorkerReport,
                 max_delay_s: float) -> None:
        self._sqs, self._settings, self._report = sqs, settings, report
        self._max_delay_s = max_delay_s
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="securepipe-deleter",
                                        daemon=True)
        self._thread.start()

    def add(self, message: dict[str, Any]) -> None:
        with self._cond:
            self._pending.append(message)
            self._cond.notify()

    def close(self) -> None:
        """Delete everything still waiting, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                deadline = time.monotonic() + self._max_delay_s
                while len(self._pending) < self.BATCH and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._pending[:self.BATCH]
                del self._pending[:self.BATCH]
            self._delete(batch)

    def _delete(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._sqs.delete_message_batch(
                QueueUrl=self._settings.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                         for n, m in enumerate(batch)])
        except Exception as exc:   # left for redelivery, which is harmless
            LOG.warning("DeleteMessageBatch failed (%s); %d messages left for redelivery",
                        exc, len(batch))
            return
        for _ in response.get("Successful", []):
            self._report._add("deleted")
        for failed in response.get("Failed", []):
            LOG.warning("message %s left for redelivery: %s",
                        batch[int(failed["Id"])].get("MessageId"), failed.get("Code"))


class _InFlight:
    """Receipt handles of messages being worked on, for the visibility heartbeat."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, str] = {}

    def add(self, message_id: str, handle: str) -> None:
        with self._lock:
            self._handles[message_id] = handle

    def remove(self, message_id: str) -> None:
        with self._lock:
            self._handles.pop(message_id, None)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._handles)


def ingest_worker(
    config: IngestConfig,
    settings: WorkerSettings,
    session_factory: Callable[[], boto3.Session],
    *,
    archive_session_factory: Callable[[], boto3.Session] | None = None,
    item_for: Callable[[str, str], IngestItem] | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = False,
    process: Callable[[IngestItem], SampleOutcome] | None = None,
) -> WorkerReport:
    """Long-poll the ingest queue and ingest every upload it announces, until stopped.

    ``item_for(contractor, sample_id)`` gives the sample's record (legal hold, archive,
    speaker); by default a plain :class:`IngestItem`. An exception there is a failure of that
    message (retried, then dead-lettered with the reason). ``stop`` ends the loop when set;
    ``handle_signals`` also sets it on SIGTERM and SIGINT (main thread only). ``process``
    replaces the per-sample ingest (benchmarks use it to run a floor through the same loop);
    by default :func:`~securepipe.features.ingest.ingest_one`. Wraps
    ReceiveMessage, DeleteMessageBatch, DeleteMessage, ChangeMessageVisibility and
    SendMessage.
    """
    stop = stop or threading.Event()
    item_for = item_for or IngestItem
    if process is None:
        # The process's ingest clients, made now (a bad profile fails here, not on a message)
        # with a connection per sample in flight (prepare_clients).
        prepare_clients(config, session_factory, archive_session_factory=archive_session_factory,
                        max_pool_connections=settings.concurrency)

        def process(item: IngestItem) -> SampleOutcome:
            return ingest_one(item, config, session_factory,
                              archive_session_factory=archive_session_factory,
                              max_pool_connections=settings.concurrency)
    # every sample thread deletes its message, beside the receive loop and the heartbeat
    sqs = session_factory().client("sqs", config=Config(
        max_pool_connections=max(10, settings.concurrency + 2)))
    report = WorkerReport()
    inflight = _InFlight()
    heartbeat_stop = threading.Event()
    heartbeat = threading.Thread(
        target=_heartbeat, args=(sqs, settings, inflight, heartbeat_stop),
        name="securepipe-visibility", daemon=True)
    heartbeat.start()

    deleter = _Deleter(sqs, settings, report,
                       max_delay_s=min(1.0, settings.visibility_timeout_s / 6))

    def handle(message: dict[str, Any]) -> None:
        try:
            _handle(sqs, message, config, settings, process, item_for, report,
                    settled=lambda: inflight.remove(message["MessageId"]), done=deleter.add)
        finally:
            inflight.remove(message["MessageId"])

    futures: dict[Future[None], dict[str, Any]] = {}
    idle_since = time.monotonic()
    # one BLAS thread: the samples in flight are the parallelism (securepipe.features.extract)
    # closing(deleter) exits last, after the pool has waited for every sample thread: every
    # finished message's delete is queued by then, and is sent before the worker returns
    with closing(deleter), _signals(stop, handle_signals), one_blas_thread(), \
            ThreadPoolExecutor(max_workers=settings.concurrency,
                               thread_name_prefix="securepipe-ingest") as pool:
        try:
            while not stop.is_set():
                free = settings.concurrency - len(futures)
                if settings.max_messages is not None:
                    free = min(free, settings.max_messages - report.messages)
                    if free <= 0 and not futures:
                        report.stopped_by = "max-messages"
                        break
                messages: list[dict[str, Any]] = []
                if free > 0:
                    messages = _receive(sqs, settings, min(10, free), stop)
                    if messages and stop.is_set():
                        _release(sqs, settings, messages, report)
                        break
                    for message in messages:
                        report._add("messages")
                        inflight.add(message["MessageId"], message["ReceiptHandle"])
                        futures[pool.submit(handle, message)] = message
                    if messages or futures:
                        idle_since = time.monotonic()
                if futures:
                    # Poll again at once only if the last receive found work or itself waited
                    # (a long poll); after an empty short poll (wait_s=0), wait for a sample
                    # instead of spinning on ReceiveMessage.
                    eager = free > 0 and (bool(messages) or settings.wait_s > 0)
                    done, _ = wait(futures, timeout=0 if eager else 0.5,
                                   return_when=FIRST_COMPLETED)
                    for future in done:
                        futures.pop(future)
                        future.result()   # _handle never raises; a bug here should show
                elif (settings.idle_exit_s is not None
                      and time.monotonic() - idle_since >= settings.idle_exit_s):
                    report.stopped_by = "idle"
                    break
            if not report.stopped_by:
                report.stopped_by = "stop"
            # Drain: in-flight samples finish, up to drain_s; the rest are released.
            done, pending = wait(futures, timeout=settings.drain_s)
            if pending:
                _release(sqs, settings, [futures[f] for f in pending], report)
        finally:
            heartbeat_stop.set()
            heartbeat.join(timeout=5)
    return report


@contextmanager
def _signals(stop: threading.Event, enabled: bool) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT for the duration (main thread only)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, frame: Any) -> None:
        LOG.info("signal %s: finishing in-flight samples, then stopping", signum)
        stop.set()

    for sig in saved:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _receive(sqs: Any, settings: WorkerSettings, n: int,
             stop: threading.Event) -> list[dict[str, Any]]:
    try:
        response = sqs.receive_message(
            QueueUrl=settings.queue_url, MaxNumberOfMessages=n, WaitTimeSeconds=settings.wait_s,
            VisibilityTimeout=settings.visibility_timeout_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"])
    except ClientError as exc:
        LOG.warning("ReceiveMessage failed (%s); retrying", exc.response.get("Error", {}))
        stop.wait(1.0)
        return []
    return list(response.get("Messages", []))


def _heartbeat(sqs: Any, settings: WorkerSettings, inflight: _InFlight,
               done: threading.Event) -> None:
    """Every third of the visibility timeout, extend every in-flight message's visibility."""
    period = settings.visibility_timeout_s / 3
    while not done.wait(period):
        for message_id, handle in inflight.snapshot().items():
            try:
                sqs.change_message_visibility(QueueUrl=settings.queue_url, ReceiptHandle=handle,
                                              VisibilityTimeout=settings.visibility_timeout_s)
            except ClientError as exc:   # finished meanwhile, or the handle expired
                LOG.info("could not extend %s: %s", message_id, exc.response.get("Error", {}))


def _handle(sqs: Any, message: dict[str, Any], config: IngestConfig, settings: WorkerSettings,
            process: Callable[[IngestItem], SampleOutcome],
            item_for: Callable[[str, str], IngestItem], report: WorkerReport,
            settled: Callable[[], None] = lambda: None,
            done: Callable[[dict[str, Any]], None] | None = None) -> None:
    """One message: ingest what it names, then delete, retry or dead-letter it. Never raises.

    ``settled`` is called once the work is done and before the message's fate is sent, so the
    visibility heartbeat no longer extends it (it would undo a retry delay). ``done`` takes a
    finished message to delete (the worker's batched deleter); without it, DeleteMessage."""
    receives = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
    try:
        try:
            pairs = parse_event(message.get("Body", ""), config.raw_bucket)
        except PoisonMessage as poison:
            settled()
            _dead_letter(sqs, settings, message, receives, poison.reason, report)
            return
        outcomes: list[SampleOutcome] = []
        for contractor, sample_id in pairs:
            try:
                item = item_for(contractor, sample_id)
            except Exception as exc:
                outcomes.append(SampleOutcome(IngestItem(contractor, sample_id), "failed",
                                              reason=f"no record: {type(exc).__name__}: {exc}"))
                continue
            try:
                outcomes.append(process(item))
            except Exception as exc:   # ingest_one never raises; a replacement might
                outcomes.append(SampleOutcome(item, "failed",
                                              reason=f"{type(exc).__name__}: {exc}"))
        settled()
        failed = [o for o in outcomes if o.status == "failed"]
        with report._lock:
            report.outcomes.extend(outcomes)
        if not failed:
            # processed, quarantined, or missing (already erased, or never there): done
            if done is not None:
                done(message)
                return
            sqs.delete_message(QueueUrl=settings.queue_url,
                               ReceiptHandle=message["ReceiptHandle"])
            report._add("deleted")
            return
        reason = "; ".join(f"{o.item.contractor}/{o.item.sample_id}: {o.reason}"
                           for o in failed)
        if receives >= settings.max_receives:
            _dead_letter(sqs, settings, message, receives, reason, report)
        else:
            sqs.change_message_visibility(QueueUrl=settings.queue_url,
                                          ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=settings.retry_delay_s)
            report._add("retried")
    except Exception as exc:
        # An SQS call failed: leave the message alone; it becomes visible again by itself.
        LOG.warning("message %s left for redelivery: %s", message.get("MessageId"), exc)


def _dead_letter(sqs: Any, settings: WorkerSettings, message: dict[str, Any], receives: int,
                 reason: str, report: WorkerReport) -> None:
    """SendMessage to the dead-letter queue with the reason, then DeleteMessage the original
    (in that order: a crash between them leaves a duplicate, never a loss)."""
    reason = reason[:1000] or "unknown"
    sqs.send_message(QueueUrl=settings.dead_letter_url, MessageBody=message.get("Body") or "-",
                     MessageAttributes={
                         ATTR_REASON: {"DataType": "String", "StringValue": reason},
                         ATTR_RECEIVES: {"DataType": "Number", "StringValue": str(receives)},
                         ATTR_SOURCE_ID: {"DataType": "String",
                                          "StringValue": str(message.get("MessageId"))}})
    sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
    AUDIT.info("ingest.dead-letter", extra={
        "principal": "securepipe-ingest", "action": "ingest.dead-letter",
        "bucket": None, "key": None, "outcome": "error", "purpose": "ingest",
        "contractor": None, "sample_id": None, "bytes": None,
        "reason": f"message {message.get('MessageId')} after {receives} receives: {reason}"})
    report._add("dead_lettered")


def _release(sqs: Any, settings: WorkerSettings, messages: list[dict[str, Any]],
             report: WorkerReport) -> None:
    """Make messages visible again at once (ChangeMessageVisibility to 0) on shutdown."""
    for message in messages:
        with suppress(ClientError):
            sqs.change_message_visibility(QueueUrl=settings.queue_url,
                                          ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            report._add("released")


def dead_letters(session: boto3.Session, dead_letter_url: str,
                 max_messages: int = 10) -> list[dict[str, str]]:
    """Peek at dead-lettered messages: body and reason of each (visibility 0: left in place)."""
    sqs = session.client("sqs")
    out: list[dict[str, str]] = []
    response = sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=max_messages,
                                   MessageAttributeNames=["All"], VisibilityTimeout=0,
                                   WaitTimeSeconds=0)
    for message in response.get("Messages", []):
        attrs = message.get("MessageAttributes") or {}
        out.append({"body": message.get("Body", ""),
                    "reason": (attrs.get(ATTR_REASON) or {}).get(
                        "StringValue", "redriven by SQS (the worker died on it)")})
    return out
