"""How long a job will take, from what the live workers measured: every epoch records its seconds, and its job the
worker that ran it, the device it ran on and its spec (image size, samples).

An epoch measured at one spec is scaled to another by the work each does. AlexNet's convolutions cost in proportion
to the pixels; its fully connected layers cost the same at any size (the last feature map is pooled to 6×6); a test
image costs a third of a training one (a forward pass, where training adds a backward pass twice as dear). The rest
of a step (Adam's update of 57 M parameters) is left out: with batches of 32 or more it is a small share.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import EpochMetric, Job, Worker, utcnow
from service.spec import JobSpec

FULL_TRAIN, FULL_TEST = 50_000, 10_000
# Multiply-adds of one forward pass at 224 px, in millions: the five convolutions' and the three linear layers'.
CONV_MACS_224, LINEAR_MACS = 655.0, 58.6
# Beyond this, the answer says so: the quick demo takes a minute or two on a CPU, a full CIFAR-10 job hours.
LONG_SECONDS = 600.0
# The newest epochs of each worker that are looked at: its speed now, not last month's.
RECENT_EPOCHS = 50


@dataclass(frozen=True)
class Estimate:
    """Seconds of training and evaluation on the fastest live worker (None when none has measured anything), what
    they are based on, and a warning when the job is long or no worker is there to run it."""

    seconds: float | None
    basis: str
    warning: str | None = None


def epoch_work(spec: JobSpec) -> float:
    """One epoch's work in millions of multiply-adds (forward-pass equivalents: training counts three times)."""
    per_image = CONV_MACS_224 * (spec.image_size / 224) ** 2 + LINEAR_MACS
    return per_image * (3 * (spec.train_samples or FULL_TRAIN) + (spec.test_samples or FULL_TEST))


def estimate(session: Session, spec: JobSpec, alive_seconds: float) -> Estimate:
    """How long `spec` trains, scaled from the newest, most alike epoch each live worker measured; the fastest."""
    since = utcnow() - timedelta(seconds=alive_seconds)
    workers = session.scalars(
        select(Worker.id).where(Worker.stopped_at.is_(None), Worker.last_seen_at >= since).order_by(Worker.id)
    ).all()
    if not workers:
        waits = "no worker is running: the job waits in the queue until one starts"
        return Estimate(None, "no worker is running", waits)
    best: tuple[float, str] | None = None
    for worker in workers:
        found = _per_worker(session, worker, spec)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    if best is None:
        return Estimate(None, "no live worker has finished an epoch yet: its speed is not known")
    seconds, basis = best
    warning = None
    if seconds > LONG_SECONDS:
        warning = (
            f"this job trains for about {_duration(seconds)}: fewer epochs or train_samples, or a smaller "
            "image_size, are quicker (the quick demo takes a minute or two on a CPU)"
        )
    return Estimate(seconds, basis, warning)


def _per_worker(session: Session, worker: str, spec: JobSpec) -> tuple[float, str] | None:
    """`spec`'s seconds on `worker`, from its newest epoch of the most alike job; None when it measured none."""
    rows = session.execute(
        select(EpochMetric.job_id, EpochMetric.epoch, EpochMetric.seconds, Job.spec, Job.device)
        .join(Job, Job.id == EpochMetric.job_id)
        .where(Job.worker_id == worker)
        .order_by(EpochMetric.created_at.desc())
        .limit(RECENT_EPOCHS)
    ).all()
    usable = [r for r in rows if spec.device in ("auto", r.device)]
    if not usable:
        return None

    def alike(row: Any) -> tuple[bool, bool, bool]:
        measured = row.spec
        return (
            measured["precision"] == spec.precision,
            measured["image_size"] == spec.image_size,
            measured["batch_size"] == spec.batch_size,
        )

    row = max(usable, key=alike)  # the newest of the most alike: max keeps the first of equals
    measured = JobSpec.model_validate(row.spec)
    seconds = spec.epochs * epoch_work(spec) * row.seconds / epoch_work(measured)
    basis = (
        f"worker {worker}'s epoch {row.epoch} of job {row.job_id} ({measured.image_size} px, "
        f"{row.seconds:.1f} s on {row.device}), scaled to this spec"
    )
    return seconds, basis


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"
