"""A sweep's request: the spec every job starts from and a grid of values; the API and `service.sweeps` share it."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.spec import JobSpec

# The most jobs one sweep queues: 64 small jobs are already hours on a CPU, and a grid that makes more (ten values
# for each of three fields is 1,000) is more likely a slip than a plan.
MAX_JOBS = 64
# Each grid key is a spec field, and its values are what that field accepts: the published schema says so exactly,
# so that a body the schema allows is a sweep the API queues (unless it makes more than MAX_JOBS jobs).
_FIELD_SCHEMAS = JobSpec.model_json_schema()["properties"]
GRID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
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
    grid: Annotated[dict[str, list[Any]], WithJsonSchema(GRID_SCHEMA)] = Field(default_factory=dict)
