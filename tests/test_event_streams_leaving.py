"""Event streams over a real server: a client that leaves mid-stream is no error, and a Last-Event-ID past the
database's integer range is ignored rather than cutting the stream."""

from pathlib import Path

import httpx

from bench.processes import api_server
from service import events
from service.config import Settings
from service.db import transaction
from tests.helpers import Sessions, queue_jobs

# Clients that leave, one after another: each left the server's stream with events queued.
LEAVINGS = 20


def test_a_client_leaving_while_events_are_queued_logs_no_traceback(
    settings: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    (job_id,) = queue_jobs(sessions)
    with transaction(sessions) as s:  # far more than a client reads before it leaves: the stream has more to send
        events.emit_logs(s, job_id, [f"line {i} " + "x" * 200 for i in range(3 * events.BATCH)])
    log = tmp_path / "api.log"
    url = f"/jobs/{job_id}/events"
    with api_server(settings, log) as base:
        for _ in range(LEAVINGS):
            with httpx.Client(base_url=base, timeout=30) as client, client.stream("GET", url) as response:
                assert response.status_code == 200
                assert any(line.startswith("event: log") for line in response.iter_lines())
            # The connection is dropped here, with events still on their way.
            # The server is still well after the client left.
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    # Stopped: whatever the server logged about the dropped streams is in the log now.
    text = log.read_text()
    assert text.count(f"GET /jobs/{job_id}/events") == LEAVINGS  # the server did log each stream: its log is complete
    assert "Traceback" not in text, text[-5000:]


def test_a_last_event_id_past_the_integer_range_streams_from_the_start(
    settings: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    (job_id,) = queue_jobs(sessions)
    with transaction(sessions) as s:
        events.emit_logs(s, job_id, ["the first line"])
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as client:
        # Past the 64-bit integer the events table holds: ignored, as a browser would send it again forever.
        for last_event_id in (str(2**63), str(2**64), "9" * 40):
            headers = {"Last-Event-ID": last_event_id}
            with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
                assert response.status_code == 200
                assert any("the first line" in line for line in response.iter_lines()), last_event_id
