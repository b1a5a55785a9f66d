"""A job deleted in the moment after it finished: its last log lines have no job to belong to; the worker says so
and claims the next job, rather than exiting on the foreign-key error."""

from sqlalchemy import delete

from service.config import Settings
from service.db import transaction
from service.models import Job, Status
from tests.helpers import Sessions, queue_jobs
from worker.loop import Worker
from worker.runner import JobRun


def test_a_job_deleted_as_it_ends_leaves_the_worker_claiming_the_next(settings: Settings, sessions: Sessions) -> None:
    first, second = queue_jobs(sessions, 2)
    ran: list[int] = []

    class DeletedAsItEnds(JobRun):
        """A run that ends at once; the first job's row is deleted just as it does (by someone else)."""

        def run(self) -> Status:
            ran.append(self.claim.job_id)
            if self.claim.job_id == first:
                with transaction(self.sessions) as session:
                    session.execute(delete(Job).where(Job.id == first))
            return Status.SUCCEEDED

    Worker(settings, "w1", run_factory=DeletedAsItEnds).run(burst=True)
    assert ran == [first, second]  # the same worker went on to claim the next job
    with transaction(sessions) as session:
        assert session.get(Job, first) is None
