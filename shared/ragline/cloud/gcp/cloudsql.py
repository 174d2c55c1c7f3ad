"""Cloud SQL connections through the Cloud SQL Python Connector with IAM database auth.

The connector costs ~1.2 s to import and calls `google.auth.default()` when built: both happen
on the first connection, never at import."""

from __future__ import annotations

from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError

Creator = Any


def cloud_sql_creator(settings: Settings, connector: Any = None) -> Creator:
    """A DBAPI connection factory through the Cloud SQL Python Connector with IAM auth."""
    if not settings.db_iam_user:
        raise ConfigurationError("CLOUD_SQL_INSTANCE needs DB_IAM_USER (the IAM database user)")
    holder: dict[str, Any] = {"connector": connector}

    def create() -> Any:
        if holder["connector"] is None:
            # Lazy: the connector costs ~1.2 s to import and calls google.auth.default().
            from google.cloud.sql.connector import Connector

            holder["connector"] = Connector(refresh_strategy="lazy")
        return holder["connector"].connect(
            settings.cloud_sql_instance,
            "pg8000",
            user=settings.db_iam_user,
            db=settings.db_name,
            enable_iam_auth=True,
        )

    return create
