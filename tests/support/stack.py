"""Helpers for tests that use the session's local stack (the S3 and Prefect servers that
tests/conftest.py starts): settings pointing at an S3 server, events read back from the Prefect
server, and a clean slate of deployments and automations."""

from __future__ import annotations

import time

from prefect import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from infra.local_s3 import S3Server
from tasks.settings import Settings, get_settings


def settings_for(server: S3Server, **overrides: object) -> Settings:
    """The project's settings pointed at `server`, with per-test overrides on top."""
    return get_settings(
        s3_endpoint=server.url,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
        **overrides,
    )


def events_named(name: str, model: str, expected: int = 1, timeout: float = 15.0) -> list:
    """Events reach the server asynchronously: poll until they are there."""
    deadline = time.monotonic() + timeout
    while True:
        # The filter's `until` defaults to its creation time: build it anew on every poll.
        event_filter = EventFilter(event=EventNameFilter(name=[name]),
                                   resource=EventResourceFilter(id=[f"mlops.model.{model}"]))  # fmt: skip
        with get_client(sync_client=True) as client:
            events = client.read_events(filter=event_filter, limit=50).events
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def remove_deployments_and_automations() -> None:
    """Delete every deployment and automation on the session's Prefect server, so no later
    test's events trigger a leftover deployment."""
    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            client.delete_automation(automation.id)
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)


def publish_csv(settings: Settings, name: str, frame) -> str:
    """Put `frame` in the bucket as datasets/<model>/<name>.csv; its s3:// URI."""
    import io

    from tasks.s3 import connect

    store = connect(settings)
    store.ensure_bucket()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    store.put_bytes(f"datasets/{settings.model_name}/{name}.csv", buffer.getvalue().encode())
    return f"s3://{settings.bucket}/datasets/{settings.model_name}/{name}.csv"
