"""The job spec: what a job trains. The one contract between the API (which validates and stores it) and the
worker (which trains exactly it: `worker.train.fit` takes a `JobSpec`)."""

from collections.abc import Collection, Mapping, Sequence
from difflib import get_close_matches
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service.errors import InvalidRequest

# CIFAR-10's split sizes; the synthetic dataset has the same shape so the two are interchangeable.
TRAIN_SIZE = 50_000
TEST_SIZE = 10_000


def _whole_float_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema counts 2.0 as an integer, so the published schema allows it; strict mode still refuses "2",
# true and 2.5.
WholeInt = Annotated[int, BeforeValidator(_whole_float_to_int)]
WholeIntOrNone = Annotated[int | None, BeforeValidator(_whole_float_to_int)]


# The quick demo: learns the synthetic classes in 1–2 minutes on a 2-core CPU (loss 1.7 → 0.04, accuracy 90 % →
# 100 % over its 3 epochs of 40 steps); the API documents it as POST /jobs's example.
DEMO: dict[str, Any] = {
    "dataset": "synthetic",
    "epochs": 3,
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 1280,
    "test_samples": 256,
}


class JobSpec(BaseModel):
    """What to train. Every field is optional; the stored spec has every default filled in."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [DEMO]},
    )

    epochs: WholeInt = Field(5, ge=1, le=1000, description="Passes over the training set.")
    batch_size: WholeInt = Field(512, ge=1, le=4096, description="Images per training step (the lecture's 512).")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="`sgd` uses momentum 0.9.")
    learning_rate: float = Field(
        1e-4,
        gt=0,
        le=1,
        description="1e-4: at Adam's usual 1e-3 this AlexNet (no batch norm) often stays at chance.",
    )
    image_size: WholeInt = Field(224, ge=63, le=512, description="CIFAR's 32×32 images are upscaled to this.")
    dataset: Literal["cifar10", "synthetic"] = Field(
        "cifar10", description="`synthetic`: generated class-dependent images, for offline demos and tests."
    )
    train_samples: WholeIntOrNone = Field(
        None, ge=1, le=TRAIN_SIZE, description="A seeded subset of the training set; null = all 50,000."
    )
    test_samples: WholeIntOrNone = Field(
        None, ge=1, le=TEST_SIZE, description="A seeded subset of the test set; null = all 10,000."
    )
    # 2**53 - 1, the largest integer a JSON number keeps exactly in double-based clients and in FastAPI's
    # OpenAPI document (which writes bounds as floats: a 2**63 - 1 bound came out as 2**63).
    seed: WholeInt = Field(0, ge=0, le=2**53 - 1, description="Seeds model init, shuffling and subsets.")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="`auto` = CUDA when the worker has it.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="`auto` = bf16 where the hardware does it well; `fp32` = the lecture's numerics."
    )
    conv2_filter: WholeInt = Field(0, ge=0, le=191, description="Which of conv2's 192 filters to draw.")
    max_attempts: WholeInt = Field(3, ge=1, le=100, description="Runs before a job whose worker keeps dying fails.")
    max_runtime_seconds: float | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="A running job past this is stopped and failed."
    )
    # No NUL: PostgreSQL text cannot hold one (the insert failed with a 500); refused with 422 on every backend.
    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$", description="A free label.")

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_field_meant(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> "JobSpec":
        try:
            return handler(data)
        except ValidationError as exc:
            raise suggest_fields(exc, cls.model_fields) from None


# ---------------------------------------------------------------- what validates but is almost surely a slip


def suggest_fields(exc: ValidationError, fields: Collection[str]) -> ValidationError:
    """`exc` with `did you mean "epochs"?` added to each unknown field's error where one of `fields` is close."""
    errors = exc.errors(include_url=False)

    def guess(error: Any) -> str | None:
        name = error["loc"][-1] if error["type"] == "extra_forbidden" and len(error["loc"]) == 1 else None
        close = get_close_matches(name, fields, n=1) if isinstance(name, str) else []
        return close[0] if close else None

    if not any(guess(e) for e in errors):
        return exc
    # Each error keeps its place, type and input; only the messages of the misspelt fields grow.
    details: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError(e["type"], f'{e["msg"]}; did you mean "{meant}"?' if meant else e["msg"]),
            "loc": e["loc"],
            "input": e["input"],
        }
        for e in errors
        for meant in [guess(e)]
    ]
    return ValidationError.from_exception_data(exc.title, details)


def batch_problem(batch_size: Any, train_samples: Any) -> str | None:
    """Why a batch larger than the training set is refused, or None: each epoch would be one smaller step, which is
    `batch_size` = `train_samples` said by mistake (a full CIFAR-10 set, 50,000, is larger than any batch)."""
    numbers = [isinstance(n, int | float) and not isinstance(n, bool) for n in (batch_size, train_samples)]
    if not all(numbers) or batch_size <= train_samples:
        return None
    return (
        f"batch_size {batch_size:g} is larger than train_samples {train_samples:g}: every epoch would be one step of "
        f"{train_samples:g} images; give a batch_size of at most {train_samples:g}"
    )


def check_new(spec: JobSpec) -> None:
    """Refuse, naming the field, a spec a client sent that validates but would not train as asked (POST /jobs and a
    rerun; a sweep checks its combinations as it validates). Only what is about to be queued is checked: stored
    specs read as they are, whatever rules came later, and code that queues jobs itself may ask for anything."""
    problem = batch_problem(spec.batch_size, spec.train_samples)
    if problem:
        raise InvalidRequest(problem, [{"loc": ["body", "batch_size"], "msg": problem, "type": "batch_too_large"}])


# ---------------------------------------------------------------- a spec in a few words

# The order a label names the fields that set runs apart: what people vary most, first ("sgd lr 1e-2 batch 64").
LABEL_ORDER = (
    "optimizer",
    "learning_rate",
    "batch_size",
    "epochs",
    "image_size",
    "dataset",
    "train_samples",
    "test_samples",
    "seed",
    "precision",
    "device",
    "conv2_filter",
    "max_attempts",
    "max_runtime_seconds",
)


DATASET_NAMES = {"cifar10": "CIFAR-10", "synthetic": "synthetic"}
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD"}


def run_title(
    dataset: str, optimizer: str, learning_rate: float, batch_size: int, image_size: int, precision: str
) -> str:
    """A run in one line, as every picture of it is titled, e.g. "synthetic · Adam lr 1e-4 · batch 512 · 64 px ·
    bf16" (`precision` as it trained: bf16 or fp32)."""
    return " · ".join(
        (
            DATASET_NAMES.get(dataset, dataset),
            f"{OPTIMIZER_NAMES.get(optimizer, optimizer)} lr {compact_number(learning_rate)}",
            f"batch {batch_size}",
            f"{image_size} px",
            precision,
        )
    )


def compact_number(value: float) -> str:
    """A learning rate the way people write it: 1e-4, 3e-4, 2.5e-3, 1e-2 (and 1 for 1.0)."""
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return mantissa if int(exponent) == 0 else f"{mantissa}e{int(exponent)}"


def _words(field: str, value: Any) -> str:
    if value is None:
        return {"max_runtime_seconds": "no time limit"}.get(field, f"all {field.split('_')[0]} images")
    return {
        "learning_rate": lambda: f"lr {compact_number(value)}",
        "batch_size": lambda: f"batch {value}",
        "epochs": lambda: f"{value} epoch{'' if value == 1 else 's'}",
        "image_size": lambda: f"{value} px",
        "train_samples": lambda: f"{value} train images",
        "test_samples": lambda: f"{value} test images",
        "seed": lambda: f"seed {value}",
        "conv2_filter": lambda: f"conv2 filter {value}",
        "max_attempts": lambda: f"{value} attempts",
        "max_runtime_seconds": lambda: f"at most {value:g} s",
        # "auto" alone says nothing: "precision auto" does.
        "precision": lambda: f"precision {value}" if value == "auto" else str(value),
        "device": lambda: f"device {value}" if value == "auto" else str(value),
    }.get(field, lambda: str(value))()


def label(values: Mapping[str, Any], separator: str = " ") -> str:
    """Some spec fields in a few words, in LABEL_ORDER: {"optimizer": "sgd", "learning_rate": 0.01} → "sgd lr 1e-2"."""
    order = [f for f in LABEL_ORDER if f in values] + sorted(set(values) - set(LABEL_ORDER))
    return separator.join(_words(f, values[f]) for f in order)


def differing_fields(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The spec fields (all but the free `name`) whose values are not the same in all of `specs`, in LABEL_ORDER."""
    return [f for f in LABEL_ORDER if len({repr(s.get(f)) for s in specs}) > 1]
