"""The AWS path under moto: Secrets Manager credentials, RDS IAM tokens, SQS FIFO queues and the
Lambda stage handler, against the real test database (Postgres is never mocked)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pg8000.dbapi
import pg8000.exceptions
import pytest
import sqlalchemy as sa
from moto import mock_aws
from sqlalchemy.engine import make_url

from ragline.api import aws_lambda
from ragline.cloud.aws import rds, sqs
from ragline.cloud.aws import secrets as aws_secrets
from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError
from ragline.db import engine as db
from ragline.db import orgs, tenancy
from ragline.db.models import Chunk, Document
from ragline.ingest import queues
from ragline.ingest.chunking import split_document

REGION = "us-east-1"
SECRET_NAME = "ragline/db"
DOC = "# Guide\n\nIntro paragraph about widgets.\n\n## Setup\n\n" + " ".join(
    f"Sentence {i} explains how widgets are installed and configured." for i in range(60)
)


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS call; clients and cached secrets are created inside the mock."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    sqs.reset_clients()
    aws_secrets.reset_cache()
    with mock_aws():
        yield
    sqs.reset_clients()
    aws_secrets.reset_cache()
    boto3.DEFAULT_SESSION = None


@pytest.fixture()
def secret_calls(aws: None) -> list[str]:
    """Every GetSecretValue request that reaches the (moto) API, counted by a botocore hook."""
    calls: list[str] = []
    boto3.setup_default_session(region_name=REGION)
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register(
        "before-parameter-build.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    aws_secrets.reset_cache()  # the next client comes from the hooked default session
    return calls


def create_secret(value: dict[str, Any] | str) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    client = boto3.client("secretsmanager", region_name=REGION)
    return str(client.create_secret(Name=SECRET_NAME, SecretString=text)["ARN"])


def put_secret(value: dict[str, Any]) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    client.put_secret_value(SecretId=SECRET_NAME, SecretString=json.dumps(value))


def settings(**fields: Any) -> Settings:
    return Settings(_env_file=None, aws_region=REGION, **fields)


class Dialer:
    """A `connect` for the creators: records the keyword arguments, then opens a real
    connection to the test database over its Unix socket (the configured host is fictional)."""

    def __init__(self, database_url: str, fail_first: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._url = make_url(database_url)
        self._fail_first = fail_first

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self._fail_first is not None:
            exc, self._fail_first = self._fail_first, None
            raise exc
        return pg8000.dbapi.connect(
            user=self._url.username,
            database=self._url.database,
            unix_sock=self._url.query["unix_sock"],
        )


# --- Secrets Manager ---------------------------------------------------------------------


def test_secret_is_read_once_then_served_from_the_cache(secret_calls: list[str]) -> None:
    arn = create_secret({"username": "u", "password": "p1"})
    assert aws_secrets.get_json_secret(arn, REGION) == {"username": "u", "password": "p1"}
    put_secret({"username": "u", "password": "p2"})
    assert aws_secrets.get_json_secret(arn, REGION)["password"] == "p1"  # cached
    assert secret_calls == [arn]
    assert aws_secrets.get_json_secret(arn, REGION, ttl_s=0)["password"] == "p2"  # expired
    assert len(secret_calls) == 2
    aws_secrets.invalidate(arn, REGION)
    aws_secrets.get_json_secret(arn, REGION)
    assert len(secret_calls) == 3


def test_secret_errors_are_configuration_errors_without_the_secret_text(aws: None) -> None:
    with pytest.raises(ConfigurationError, match="ResourceNotFoundException"):
        aws_secrets.get_json_secret("no-such-secret", REGION)
    arn = create_secret("hunter2-not-json")
    with pytest.raises(ConfigurationError, match="not a JSON object") as info:
        aws_secrets.get_json_secret(arn, REGION)
    assert "hunter2" not in str(info.value) and info.value.__cause__ is None


@pytest.mark.usefixtures("clean_env")
def test_database_mode_with_a_secret() -> None:
    assert settings(db_auth="rds-iam", db_secret_id="s").database_mode == "rds"
    assert settings(db_secret_id="s").database_mode == "password"
    assert settings(db_host="h").database_mode == "password"
    assert settings().database_mode == "embedded"
    assert settings(database_url="postgresql+pg8000://u@h/d", db_secret_id="s").database_mode == (
        "url"
    )


# --- RDS IAM tokens and passwords as connection arguments ----------------------------------


@pytest.mark.usefixtures("clean_env")
def test_rds_iam_takes_user_and_host_from_the_secret_and_signs_a_token(
    secret_calls: list[str], database_url: str
) -> None:
    arn = create_secret(
        {
            "username": "ragline_lambda",
            "password": "unused",
            "host": "db.example.internal",
            "port": 6432,
            "dbname": "prod",
        }
    )
    config = settings(db_auth="rds-iam", db_secret_id=arn)
    dial = Dialer(database_url)
    engine = db.build_engine(config, creator=rds.rds_creator(config, connect=dial))
    with engine.connect() as conn:  # the role switch and timeout still apply
        assert conn.execute(sa.text("select current_user")).scalar() == "ragline_app"
    engine.dispose()
    kwargs = dial.calls[0]
    assert {k: kwargs[k] for k in ("user", "host", "port", "database")} == {
        "user": "ragline_lambda",
        "host": "db.example.internal",
        "port": 6432,
        "database": "prod",
    }
    assert kwargs["ssl_context"] is not None
    token = urlparse("https://" + kwargs["password"])  # a signed URL, not the secret's password
    query = parse_qs(token.query)
    assert (token.hostname, token.port) == ("db.example.internal", 6432)
    assert query["Action"] == ["connect"] and query["DBUser"] == ["ragline_lambda"]
    assert REGION in query["X-Amz-Credential"][0]

    creator = rds.rds_creator(config, connect=dial)
    for _ in range(2):
        creator().close()
    assert dial.calls[1]["password"] == dial.calls[2]["password"]  # token reused
    assert secret_calls == [arn]  # one API call for all connections of the process


@pytest.mark.usefixtures("clean_env")
def test_environment_wins_over_the_secret(aws: None) -> None:
    arn = create_secret({"username": "from_secret", "host": "secret.host", "port": "6432"})
    config = settings(
        db_auth="rds-iam", db_secret_id=arn, db_user="from_env", db_port=5433, db_name="ragline"
    )
    endpoint = rds.resolve_endpoint(config)
    assert (endpoint.host, endpoint.port, endpoint.user, endpoint.database) == (
        "secret.host",
        5433,
        "from_env",
        "ragline",
    )
    token = rds.RdsTokenCache(config).token(endpoint)
    assert parse_qs(urlparse("https://" + token).query)["DBUser"] == ["from_env"]


@pytest.mark.usefixtures("clean_env")
def test_rds_iam_needs_a_region_and_a_user_source() -> None:
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        rds.rds_creator(Settings(_env_file=None, db_auth="rds-iam", db_secret_id="s"))
    with pytest.raises(ConfigurationError, match="DB_HOST"):
        rds.rds_creator(settings(db_auth="rds-iam", db_host="h"))


@pytest.mark.usefixtures("clean_env")
def test_password_mode_uses_the_secret_password_over_ssl(
    secret_calls: list[str], database_url: str
) -> None:
    arn = create_secret({"username": "app", "password": "pw-1", "host": "db.internal"})
    config = settings(db_secret_id=arn)
    assert config.database_mode == "password"
    dial = Dialer(database_url)
    engine = db.build_engine(config, creator=rds.password_creator(config, connect=dial))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
    engine.dispose()
    kwargs = dial.calls[0]
    assert (kwargs["user"], kwargs["password"], kwargs["host"], kwargs["port"]) == (
        "app",
        "pw-1",
        "db.internal",
        5432,
    )
    assert kwargs["database"] == "ragline" and kwargs["ssl_context"] is not None


@pytest.mark.usefixtures("clean_env")
def test_refused_password_rereads_a_rotated_secret_once(
    secret_calls: list[str], database_url: str
) -> None:
    arn = create_secret({"username": "app", "password": "old", "host": "db.internal"})
    config = settings(db_secret_id=arn)
    assert rds.resolve_endpoint(config).password == "old"  # cached now
    put_secret({"username": "app", "password": "new", "host": "db.internal"})
    refused = pg8000.exceptions.DatabaseError(
        {"S": "FATAL", "C": "28P01", "M": "password authentication failed"}
    )
    dial = Dialer(database_url, fail_first=refused)
    rds.password_creator(config, connect=dial)().close()
    assert [c["password"] for c in dial.calls] == ["old", "new"]
    assert len(secret_calls) == 2
    other = pg8000.exceptions.DatabaseError({"S": "FATAL", "C": "3D000", "M": "no database"})
    with pytest.raises(pg8000.exceptions.DatabaseError):
        rds.password_creator(config, connect=Dialer(database_url, fail_first=other))()
    assert len(secret_calls) == 2  # other errors do not re-read the secret


@pytest.mark.usefixtures("clean_env")
def test_password_engine_dials_the_host_from_the_secret(aws: None) -> None:
    """Through `build_engine` itself: pg8000 dials the secret's host (refused: nothing there)."""
    arn = create_secret({"username": "app", "password": "pw", "host": "127.0.0.1", "port": 9})
    engine = db.build_engine(settings(db_secret_id=arn))
    with pytest.raises(sa.exc.DBAPIError, match=r"127\.0\.0\.1"):
        engine.connect()
    engine.dispose()


# --- SQS FIFO queues -----------------------------------------------------------------------


@pytest.fixture()
def queue_urls(aws: None) -> dict[str, str]:
    client = boto3.client("sqs", region_name=REGION)
    return {
        stage: client.create_queue(
            QueueName=f"ragline-{stage}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        for stage in queues.STAGES
    }


@pytest.fixture()
def on_sqs(configure: Callable[..., None], queue_urls: dict[str, str]) -> Callable[..., None]:
    """`configure` with the SQS backend on the moto queues (plus any other settings)."""

    def apply(**env: str) -> None:
        configure(
            queue_backend="sqs",
            embedding_provider="hashing",
            sqs_queue_urls=json.dumps(queue_urls),
            aws_region=REGION,
            **env,
        )

    return apply


def receive(url: str) -> list[dict[str, Any]]:
    client = boto3.client("sqs", region_name=REGION)
    response = client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
    )
    return list(response.get("Messages", []))


def test_enqueue_sends_once_per_task_name_to_the_stage_queue(
    on_sqs: Callable[..., None], queue_urls: dict[str, str]
) -> None:
    on_sqs()
    doc = str(uuid.uuid4())
    payload = {"org_id": str(uuid.uuid4()), "document_id": doc, "batch": 0}
    queues.enqueue("embed", payload, f"embed-{doc}-0")
    queues.enqueue("embed", payload, f"embed-{doc}-0")  # a duplicate delivery of the enqueue
    long_name = "x" * 200
    queues.enqueue("finalize", payload, long_name)
    (message,) = receive(queue_urls["embed"])
    assert json.loads(message["Body"]) == {"stage": "embed", "payload": payload}
    assert message["Attributes"]["MessageGroupId"] == doc
    assert message["Attributes"]["MessageDeduplicationId"] == f"embed-{doc}-0"
    assert receive(queue_urls["chunk"]) == []
    (final,) = receive(queue_urls["finalize"])
    assert final["Attributes"]["MessageDeduplicationId"] == sqs.deduplication_id(long_name)
    assert len(sqs.deduplication_id(long_name)) <= 128


# --- the Lambda handler --------------------------------------------------------------------


def sqs_event(url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event an SQS event source mapping hands to Lambda for these received messages."""
    arn = f"arn:aws:sqs:{REGION}:123456789012:{url.rsplit('/', 1)[1]}"
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def deliver(url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One poll of the event source mapping: receive, invoke, delete what was acknowledged and
    make the reported failures visible again (as the visibility timeout would)."""
    messages = receive(url)
    if not messages:
        return [], []
    response = aws_lambda.handler(sqs_event(url, messages), None)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    client = boto3.client("sqs", region_name=REGION)
    for m in messages:
        if m["MessageId"] in failed:
            client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return messages, failed


def new_document() -> tuple[uuid.UUID, uuid.UUID]:
    with db.owner_session() as session:
        org_id, _ = orgs.ensure_org(session, "acme")
    with tenancy.tenant_session(org_id) as session:
        doc = tenancy.add(session, Document(title="Guide", content=DOC, content_hash="h1"))
        session.flush()
        doc_id = doc.id
    return org_id, doc_id


def start(org_id: uuid.UUID, doc_id: uuid.UUID) -> None:
    payload = {"org_id": str(org_id), "document_id": str(doc_id)}
    queues.enqueue("chunk", payload, f"chunk-{doc_id}")


def document(org_id: uuid.UUID, doc_id: uuid.UUID) -> Document:
    with tenancy.tenant_session(org_id) as session:
        doc = tenancy.get(session, Document, doc_id)
        assert doc is not None
        return doc


def embedded_chunks(org_id: uuid.UUID, doc_id: uuid.UUID) -> int:
    with tenancy.tenant_session(org_id) as session:
        return tenancy.count(
            session, Chunk, Chunk.document_id == doc_id, Chunk.embedding.is_not(None)
        )


def test_handler_runs_the_pipeline_from_sqs_to_ready(
    on_sqs: Callable[..., None], queue_urls: dict[str, str]
) -> None:
    on_sqs(embed_batch_chunks="4")
    org_id, doc_id = new_document()
    start(org_id, doc_id)
    chunks, failed = deliver(queue_urls["chunk"])
    assert len(chunks) == 1 and failed == []
    n_chunks = len(split_document(DOC))
    embeds, failed = deliver(queue_urls["embed"])
    assert len(embeds) == (n_chunks + 3) // 4 > 1 and failed == []
    assert {json.loads(m["Body"])["payload"]["batch"] for m in embeds} == set(range(len(embeds)))
    # The batch that wrote the last missing vector completed the document in its own
    # transaction (issue 16): no finalize hop.
    finals, failed = deliver(queue_urls["finalize"])
    assert finals == [] and failed == []
    doc = document(org_id, doc_id)
    assert doc.status == "ready" and doc.chunk_count == n_chunks
    assert embedded_chunks(org_id, doc_id) == n_chunks
    assert all(receive(url) == [] for url in queue_urls.values())


def test_transient_failure_is_reported_then_succeeds_on_redelivery(
    on_sqs: Callable[..., None], queue_urls: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    on_sqs(embed_batch_chunks="4", fault_inject="embed:1")
    org_id, doc_id = new_document()
    start(org_id, doc_id)
    deliver(queue_urls["chunk"])
    first, failed = deliver(queue_urls["embed"])
    assert len(first) > 1
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in first] == ["1"] * len(first)
    # The first record fails; the rest of its FIFO group (same document) waits, unrun.
    assert failed == [m["MessageId"] for m in first]
    assert embedded_chunks(org_id, doc_id) == 0
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(e.get("event") == "task_deferred" for e in logs) == len(first) - 1
    again, failed = deliver(queue_urls["embed"])
    assert {m["MessageId"] for m in again} == {m["MessageId"] for m in first}
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    assert failed == []
    deliver(queue_urls["finalize"])
    assert document(org_id, doc_id).status == "ready"


def test_last_attempt_failure_is_recorded_and_acknowledged(
    on_sqs: Callable[..., None], queue_urls: dict[str, str]
) -> None:
    on_sqs(fault_inject="chunk:99", task_max_attempts="2")
    org_id, doc_id = new_document()
    start(org_id, doc_id)
    _, failed = deliver(queue_urls["chunk"])
    assert len(failed) == 1
    _, failed = deliver(queue_urls["chunk"])  # receive count 2 = TASK_MAX_ATTEMPTS
    assert failed == []
    doc = document(org_id, doc_id)
    assert doc.status == "failed" and "injected fault" in (doc.error or "")
    assert receive(queue_urls["chunk"]) == []


def test_malformed_messages_are_logged_and_acknowledged(
    on_sqs: Callable[..., None], queue_urls: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    on_sqs()
    client = boto3.client("sqs", region_name=REGION)
    bodies = [
        "not json at all",
        "[1, 2]",
        json.dumps({"stage": "compress", "payload": {}}),
        json.dumps({"stage": "chunk", "payload": "x"}),
        json.dumps({"stage": "chunk", "payload": {"org_id": "nope", "document_id": "secret-x"}}),
    ]
    for i, body in enumerate(bodies):
        client.send_message(
            QueueUrl=queue_urls["chunk"],
            MessageBody=body,
            MessageGroupId=f"g{i}",
            MessageDeduplicationId=f"m{i}",
        )
    messages, failed = deliver(queue_urls["chunk"])
    assert len(messages) == len(bodies) and failed == []
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    malformed = [e for e in logs if e.get("event") == "malformed_task"]
    assert {e["message_id"] for e in malformed} == {m["MessageId"] for m in messages}
    assert all(
        e["severity"] == "ERROR" and e["queue"].endswith("ragline-chunk.fifo") for e in malformed
    )
    assert "secret-x" not in json.dumps(logs)  # bodies are never logged
    assert receive(queue_urls["chunk"]) == []


def test_handler_refuses_events_that_are_not_from_sqs() -> None:
    with pytest.raises(ConfigurationError, match="SQS"):
        aws_lambda.handler({"httpMethod": "GET", "path": "/"}, None)


def test_database_down_while_recording_a_failure_is_retried(
    on_sqs: Callable[..., None], queue_urls: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The last attempt cannot record its failure (no database): SQS must keep the message."""
    on_sqs(database_url="postgresql+pg8000://app@127.0.0.1:9/ragline", task_max_attempts="1")
    db.reset_engines()
    try:
        start(uuid.uuid4(), uuid.uuid4())
        messages, failed = deliver(queue_urls["chunk"])
    finally:
        db.reset_engines()  # the next engine is built from the restored settings
    assert failed == [m["MessageId"] for m in messages] and len(messages) == 1
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    errors = {e.get("error") for e in logs if e["message"] == "task chunk error"}
    assert errors and errors <= {"InterfaceError", "OperationalError"}  # connection refused
