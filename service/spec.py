"""The job spec: what a job trains. The one contract between the API (which validates and stores it) and the
worker (which trains exactly it: `worker.train.fit` takes a `JobSpec`)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# CIFAR-10's split sizes; the synthetic dataset has the same shape so the two are interchangeable.
TRAIN_SIZE = 50_000
TEST_SIZE = 10_000


def _whole_float_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema counts 2.0 as an integer, so the published schema allows it; strict mode still refuses "2",
# true and 2.5.
WholeInt = Annotated[int, BeforeValidator(_whole_float_to_int)]
WholeIntOrNone = Annotated[int | None, BeforeValidator(_whole_float_to_int)]


# The quick demo: learns the synthetic classes in about a minute on a 2-core CPU (loss 1.7 → 0.04, accuracy 90 % →
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
