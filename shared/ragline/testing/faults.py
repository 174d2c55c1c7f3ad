"""Fault injection for the end-to-end tests: `FAULT_INJECT='embed:1'` makes every embed task
fail its first attempt with a TransientError (comma-separated, one `stage:N` per stage).
Refused outside ENVIRONMENT=test, and never packaged into a deployed function."""

from __future__ import annotations

from ragline.core.config import get_settings
from ragline.core.errors import ConfigurationError, TransientError


def inject(stage: str, attempt: int) -> None:
    settings = get_settings()
    if settings.environment != "test":
        raise ConfigurationError("FAULT_INJECT is a test setting (ENVIRONMENT=test only)")
    for item in filter(None, settings.fault_inject.split(",")):
        name, _, count = item.partition(":")
        if name.strip() == stage and attempt < int(count or 1):
            raise TransientError(f"injected fault in {stage} (attempt {attempt})")
