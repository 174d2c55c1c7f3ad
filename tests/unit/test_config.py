from __future__ import annotations

from pathlib import Path

import pytest

from ragline.core.config import Settings


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "embedded"),
        ({"database_url": "postgresql+pg8000://u@h/d"}, "url"),
        ({"cloud_sql_instance": "p:r:i", "db_iam_user": "sa@p.iam"}, "cloudsql"),
        ({"db_auth": "rds-iam", "db_host": "h"}, "rds"),
        # Order: DATABASE_URL wins over Cloud SQL, which wins over RDS.
        ({"database_url": "postgresql+pg8000://u@h/d", "cloud_sql_instance": "p:r:i"}, "url"),
        ({"cloud_sql_instance": "p:r:i", "db_auth": "rds-iam"}, "cloudsql"),
    ],
)
def test_database_mode_order(env: dict[str, str], mode: str) -> None:
    assert Settings(_env_file=None, **env).database_mode == mode  # type: ignore[call-arg]


def test_default_pepper_refused_outside_local() -> None:
    with pytest.raises(ValueError, match="API_KEY_PEPPER"):
        Settings(_env_file=None, environment="gcp").pepper()  # type: ignore[call-arg]
    settings = Settings(_env_file=None, environment="gcp", api_key_pepper="s3cret-pepper")  # type: ignore[call-arg]
    assert settings.pepper() == "s3cret-pepper"
    assert Settings(_env_file=None, environment="local").pepper()  # type: ignore[call-arg]


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_BACKEND", "cloudtasks")
    monkeypatch.setenv("FUNCTION_URLS", '{"chunk": "http://127.0.0.1:1/"}')
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.queue_backend == "cloudtasks"
    assert s.function_urls == {"chunk": "http://127.0.0.1:1/"}


def test_cli_enqueues_inline_without_a_running_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`ragline embeddings reembed` and friends: no local stack (no dev.json) and no
    QUEUE_BACKEND → the configured backend, with the inline stage runner installed."""
    from ragline.core.config import get_settings
    from ragline.dev import devstack
    from ragline.ingest import queues

    monkeypatch.delenv("QUEUE_BACKEND", raising=False)
    monkeypatch.setenv("RAGLINE_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert devstack.use_stack_queues() == "queue backend inline"
        assert queues._inline_runner is not None
    finally:
        get_settings.cache_clear()
