"""The base of every message between processes, and how a broken one is described."""

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

# The layers whose kernels are drawn (artifact names are built from these in `service.artifacts`).
Layer = Literal["conv1", "conv2"]


class Contract(BaseModel):
    """A message between processes: immutable, unknown fields refused (a typo is an error, not a silent default),
    and checked again whenever it is put into another message, so that nothing unvalidated is ever sent."""

    model_config = ConfigDict(frozen=True, extra="forbid", revalidate_instances="always")


def problems(exc: ValidationError) -> str:
    """A validation error in one line, each problem led by the field it is about: `picture.layer: Input should…`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(the message)'}: {e['msg']}" for e in exc.errors())
