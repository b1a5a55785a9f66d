"""A job's log keeps the worker's lines about that job: those logged for it by id, not those that merely mention it."""

import logging

import pytest

from worker.joblog import JobLog, JobLogger


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    """The worker logs at INFO (`python -m worker` sets it up so); the test process does not by default."""
    caplog.set_level(logging.INFO, logger="worker")


def test_a_job_log_keeps_the_lines_logged_for_its_job_and_no_other() -> None:
    with JobLog(7) as kept:
        JobLogger(7).info("epoch %d/%d", 1, 3)
        JobLogger(8).info("epoch %d/%d", 2, 3)  # another job's, which a line-by-line search for "job 7" would not tell
        logging.getLogger("worker").info("job 7: said by text only, not logged for the job")
        JobLogger(7).info("about job 8: %s", "a sweep's neighbour")
    lines = kept.take()
    assert [line.split(" ", 3)[-1] for line in lines] == ["job 7: epoch 1/3", "job 7: about job 8: a sweep's neighbour"]
    assert kept.take() == []


def test_an_error_keeps_its_traceback_and_lines_put_back_come_first() -> None:
    with JobLog(3) as kept:
        try:
            raise RuntimeError("out of luck")
        except RuntimeError:
            JobLogger(3).exception("failed")
        first = kept.take()
        JobLogger(3).warning("later")
        kept.put_back(first)
    lines = kept.take()
    assert "ERROR job 3: failed\nTraceback" in lines[0] and "RuntimeError: out of luck" in lines[0]
    assert lines[1].endswith("WARNING job 3: later")


def test_a_job_log_stops_collecting_once_closed() -> None:
    with JobLog(5) as kept:
        pass
    JobLogger(5).info("after the run")
    assert kept.take() == []
