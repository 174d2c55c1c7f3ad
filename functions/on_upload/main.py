"""`on_upload`: Cloud Storage object events of the ingestion bucket (Eventarc `finalized` and
`deleted`) → documents, exactly once per object generation (docs/documents.md)."""

import functions_framework
from cloudevents.http import CloudEvent

from ragline.api import events

events.install()


@functions_framework.cloud_event
def on_upload(cloud_event: CloudEvent) -> None:
    events.storage_event(cloud_event)
