"""A sweep's request: the spec every job starts from and a grid of values; the API and `service.sweeps` share it."""

import itertools
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.spec import JobSpec, batch_problem, suggest_fields

# The most jobs one sweep queues: 64 small jobs are already hours on a CPU, and a grid that makes more (ten values
# for each of three fields is 1,000) is more likely a slip than a plan.
MAX_JOBS = 64
# Each grid key is a spec field, and its values are what that field accepts: the published schema says so exactly,
# so that a body the schema allows is a sweep the API queues (unless it makes more than MAX_JOBS jobs).
_FIELD_SCHEMAS = JobSpec.model_json_schema()["properties"]
GRID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    # An empty grid is no sweep: it would queue the base alone, by default a full CIFAR-10 job of hours.
    "minProperties": 1,
    "description": "Spec field → the values it takes; the sweep queues one job per combination (the cartesian "
    "product), each field's values taking the place of the base's.",
    "properties": {
        name: {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_JOBS,
            "uniqueItems": True,
            "items": {k: v for k, v in schema.items() if k not in ("default", "title", "description")},
        }
        for name, schema in _FIELD_SCHEMAS.items()
    },
    "examples": [{"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 0.0001]}],
}


class SweepIn(BaseModel):
    """What to sweep: the spec every job starts from, and the values to try for some of its fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$", description="A free label.")
    base: JobSpec = Field(
        default_factory=JobSpec, description="The spec each job starts from; defaults as in POST /jobs."
    )
    # Any values here: each combination is validated as a whole spec, and an invalid one is named in the 422.
    grid: Annotated[dict[str, list[Any]], WithJsonSchema(GRID_SCHEMA)]

    @field_validator("grid")
    @classmethod
    def _not_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not grid:
            raise PydanticCustomError(
                "empty_grid",
                "the grid is empty, so this is no sweep: give at least one spec field and the values to try "
                '(e.g. {"learning_rate": [0.001, 0.0001]}); to queue one job, POST /jobs',
            )
        return grid

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_field_meant(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> "SweepIn":
        try:
            return handler(data)
        except ValidationError as exc:
            raise suggest_fields(exc, cls.model_fields) from None

    @model_validator(mode="after")
    def _batches_fit(self) -> "SweepIn":
        """Each combination's batch fits its training set (see `spec.batch_problem`), named where it is set."""
        batches = self.grid.get("batch_size", [self.base.batch_size])
        trains = self.grid.get("train_samples", [self.base.train_samples])
        for batch_size, train_samples in itertools.product(batches, trains):
            problem = batch_problem(batch_size, train_samples)
            if problem is None:
                continue
            where = "grid" if "batch_size" in self.grid or "train_samples" in self.grid else "base"
            field = "batch_size" if where == "base" or "batch_size" in self.grid else "train_samples"
            raise ValidationError.from_exception_data(
                "SweepIn",
                [
                    {
                        "type": PydanticCustomError("batch_too_large", problem),
                        "loc": (where, field),
                        "input": batch_size if field == "batch_size" else train_samples,
                    }
                ],
            )
        return self
