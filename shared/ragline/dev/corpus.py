"""The demo and test corpus: Python's own reference topics (`pydoc_data.topics`, ~465 KB)."""

from __future__ import annotations


def pydoc_topics() -> list[tuple[str, str]]:
    """(title, text) for each of the reference topics shipped with every Python."""
    from pydoc_data.topics import topics

    return [(name, topics[name]) for name in sorted(topics)]
