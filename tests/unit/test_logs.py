"""Structured logs: Cloud Logging fields, context carried by contextvars, library loggers."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from ragline.core.logs import add_context, bind_context, log


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_a_line_has_cloud_logging_fields_and_the_bound_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bind_context(request_id="r-1", function="search", trace=None)
    add_context(org_id="o-1")
    log("WARNING", "slow query", took_ms=12, event="slow_query")
    (line,) = lines(capsys)
    assert line["event"] == "slow_query"
    assert line["severity"] == "WARNING" and line["message"] == "slow query"
    assert line["request_id"] == "r-1" and line["org_id"] == "o-1" and line["took_ms"] == 12
    assert "trace" not in line and isinstance(line["time"], float)


def test_a_new_call_starts_from_a_clean_context(capsys: pytest.CaptureFixture[str]) -> None:
    bind_context(request_id="first", org_id="o-1")
    bind_context(request_id="second")
    log("INFO", "x")
    (line,) = lines(capsys)
    assert line["request_id"] == "second" and "org_id" not in line


def test_unknown_severity_becomes_info(capsys: pytest.CaptureFixture[str]) -> None:
    log("LOUD", "x")
    assert lines(capsys)[0]["severity"] == "INFO"


def test_library_stdlib_loggers_come_out_structured_at_info(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log("INFO", "configure")  # the first line sets logging up
    bind_context(request_id="r-2")
    logging.getLogger("ragline.retrieval.embeddings.minilm").info("model loaded in %.1fs", 0.5)
    logging.getLogger("ragline.ops.retention").debug("not shown")
    out = lines(capsys)
    assert out[-1]["message"] == "model loaded in 0.5s" and out[-1]["severity"] == "INFO"
    assert out[-1]["request_id"] == "r-2" and len(out) == 2


def test_context_does_not_leak_between_threads(capsys: pytest.CaptureFixture[str]) -> None:
    bind_context(request_id="main-thread")

    def other() -> None:
        bind_context(request_id="worker")
        log("INFO", "from worker")

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    log("INFO", "from main")
    worker, main = lines(capsys)
    assert worker["request_id"] == "worker" and main["request_id"] == "main-thread"


def test_a_field_of_the_event_wins_over_the_bound_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bind_context(request_id="r-3", org_id="bound")
    log("INFO", "x", org_id=None, stage="chunk")
    (line,) = lines(capsys)
    assert line["org_id"] is None and line["stage"] == "chunk" and line["request_id"] == "r-3"


def test_library_warnings_keep_their_severity_and_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log("INFO", "configure")
    bind_context(request_id="r-4", function="embed")
    logging.getLogger("ragline.ingest.extract").warning("skipped %d pages", 3)
    line = lines(capsys)[-1]
    assert line["severity"] == "WARNING" and line["message"] == "skipped 3 pages"
    assert line["function"] == "embed" and isinstance(line["time"], float)
