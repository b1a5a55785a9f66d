"""What resuming and continuing a job take and show: the continue's body, and the checkpoint they go on from."""

from pydantic import BaseModel, ConfigDict, Field


class CheckpointOut(BaseModel):
    """The checkpoint a resume or a continue goes on from: the model, the optimizer's state, the random generators."""

    name: str
    size: int = Field(description="Bytes: the weights and, for Adam, twice as much again for its moments.")
    epoch: int = Field(description="The epochs it holds finished (it may be some steps into the next).")
    step: int = Field(description="Steps done of the next epoch; 0 at an epoch's end.")


class ContinueIn(BaseModel):
    """How much longer to train a succeeded job."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(ge=1, le=1000, description="Epochs to train beyond those the job has.")
