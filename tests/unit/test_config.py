from __future__ import annotations

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
