"""Pure decisions of the incident reconciler (the planner's creator grace)."""

from datetime import UTC, datetime, timedelta

from paramedic.domain.incident_plan import CREATOR_GRACE_SECONDS
from paramedic.domain.incident_plan import awaiting_creator as _awaiting_creator

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def incident(source: str, status: dict | None = None) -> dict:
    body = {"metadata": {"name": "x", "namespace": "ns", "creationTimestamp": "2026-11-01T12:00:00Z"},
            "spec": {"source": source}}
    if status is not None:
        body["status"] = status
    return body


def test_a_receiver_created_incident_waits_for_its_status_write_a_little():
    assert _awaiting_creator(incident("alertmanager"), T0 + timedelta(seconds=1)) == CREATOR_GRACE_SECONDS - 1
    assert _awaiting_creator(incident("api"), T0) == CREATOR_GRACE_SECONDS
    # not once the receiver has written, nor past the grace (the receiver died in between)
    assert _awaiting_creator(incident("alertmanager", {"createdAt": "2026-11-01T12:00:00Z"}), T0) is None
    assert _awaiting_creator(incident("alertmanager"), T0 + timedelta(seconds=CREATOR_GRACE_SECONDS)) is None
    # incidents whose creator writes no status at once are opened right away
    assert _awaiting_creator(incident("manual"), T0) is None
    assert _awaiting_creator(incident("probe"), T0) is None
