"""Where training is between two steps: the model and its optimizer, the shuffle, the epochs done and the steps into
the next, and what that epoch has measured so far. `TrainState.checkpoint` captures it all as a `Checkpoint`, and
`TrainState.from_checkpoint` makes it again, so that a job stopped anywhere goes on as if it never had."""

from dataclasses import dataclass

import torch
from torch import nn

from service.contracts import EpochRecord, WeightChange
from service.spec import JobSpec
from worker.checkpoint import Checkpoint, RngState
from worker.measures import WEIGHT_LAYERS, layer_weights, relative_change, snapshot
from worker.model import Kernels, build_model, kernels, make_optimizer


@dataclass(eq=False)
class TrainState:
    """Where training is (see the module's docstring); the current epoch's sums are kept on the device: no per-step
    sync."""

    cfg: JobSpec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    initial: Kernels  # the drawn kernels before training, which the pictures compare against
    initial_weights: list[torch.Tensor]  # each of WEIGHT_LAYERS before training, and as the current epoch began:
    previous_weights: list[torch.Tensor]  # what the weight change is measured from
    history: list[EpochRecord]
    step_losses: torch.Tensor  # the current epoch's, one slot a step
    loss_sum: torch.Tensor  # the current epoch's, in float64
    epoch_shuffle: torch.Tensor  # the shuffle's state as the current epoch began
    step: int = 0  # steps done of the current epoch
    images: int = 0  # images this attempt trained on in the current epoch: its speed

    @classmethod
    def start(cls, cfg: JobSpec, device: torch.device, per_epoch: int) -> "TrainState":
        """Before the first step: the seed's model, a new optimizer, the shuffle seeded."""
        model, optimizer, shuffle = _build(cfg, device)
        weights = layer_weights(model)
        step_losses, loss_sum = _sums(per_epoch, device)
        return cls(
            cfg=cfg,
            model=model,
            optimizer=optimizer,
            shuffle=shuffle,
            initial=kernels(model, cfg.conv2_filter),
            initial_weights=snapshot(weights),
            previous_weights=snapshot(weights),
            history=[],
            step_losses=step_losses,
            loss_sum=loss_sum,
            epoch_shuffle=shuffle.get_state(),
        )

    @classmethod
    def from_checkpoint(cls, cfg: JobSpec, device: torch.device, per_epoch: int, saved: Checkpoint) -> "TrainState":
        """Where `saved` was taken, so that training goes on as if it had never stopped."""
        model, optimizer, shuffle = _build(cfg, device)
        # The initial weights are the seed's: rebuilt, not stored, so a checkpoint does not grow by a model.
        initial_weights = snapshot(layer_weights(build_model(device, cfg.seed)))
        model.load_state_dict(saved.model)  # into the model itself: a compiled wrapper would prefix the keys
        optimizer.load_state_dict(saved.optimizer)
        saved.rng.restore(shuffle, device)  # after every build_model: each seeds the global generator
        if saved.previous_weights is None:
            previous_weights = snapshot(layer_weights(model))
        else:
            previous_weights = [saved.previous_weights[name].to(device, copy=True) for name in WEIGHT_LAYERS]
        step_losses, loss_sum = _sums(per_epoch, device)
        if saved.step_losses is not None:
            step_losses[: len(saved.step_losses)] = saved.step_losses.to(device)
        loss_sum += saved.loss_sum
        return cls(
            cfg=cfg,
            model=model,
            optimizer=optimizer,
            shuffle=shuffle,
            initial=saved.initial,
            initial_weights=initial_weights,
            previous_weights=previous_weights,
            history=list(saved.history),
            step_losses=step_losses,
            loss_sum=loss_sum,
            epoch_shuffle=shuffle.get_state(),  # as restored: where the epoch `saved` stopped in began
            step=saved.step,
        )

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def begin_epoch(self, n_train: int) -> torch.Tensor:
        """The current epoch's order of the training images: drawn again, the same, when it resumes mid-way."""
        self.epoch_shuffle, self.images = self.shuffle.get_state(), 0
        return torch.randperm(n_train, device=self.step_losses.device, generator=self.shuffle)

    def add_step(self, loss: torch.Tensor, images: int) -> None:
        """A step of `images` images ended with `loss` (not synchronised)."""
        self.loss_sum += loss.double() * images
        self.step_losses[self.step] = loss
        self.step, self.images = self.step + 1, self.images + images

    def weight_change(self) -> dict[str, WeightChange]:
        """How far each weight layer has moved, from the start and in this epoch (whose weights it then keeps)."""
        weights = layer_weights(self.model)
        change = torch.stack(
            [relative_change(weights, self.initial_weights), relative_change(weights, self.previous_weights)]
        )
        from_initial, from_previous = change.tolist()
        for kept, now in zip(self.previous_weights, weights, strict=True):
            kept.copy_(now.detach())
        return {
            name: WeightChange(from_initial=a, from_previous=b)
            for name, a, b in zip(WEIGHT_LAYERS, from_initial, from_previous, strict=True)
        }

    def end_epoch(self, record: EpochRecord) -> None:
        """The current epoch is measured: the next one starts at its first step."""
        self.history.append(record)
        self.step = 0
        self.step_losses.zero_()
        self.loss_sum.zero_()

    def checkpoint(self) -> Checkpoint:
        """Everything needed to go on exactly from here. Its tensors are the live ones (`Checkpoint.on_host` copies
        them): take it where training waits (in a hook, or once `fit` has stopped)."""
        device, mid_epoch = self.step_losses.device, self.step > 0
        # Mid-epoch, the shuffle as the epoch began, so that its order is drawn again; dropout's generator as it is.
        shuffle = self.epoch_shuffle if mid_epoch else self.shuffle.get_state()
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return Checkpoint(
            spec=self.cfg,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rng=RngState(cpu=torch.get_rng_state(), shuffle=shuffle, cuda=cuda),
            initial=self.initial,
            history=list(self.history),
            step=self.step,
            loss_sum=self.loss_sum.item() if mid_epoch else 0.0,
            step_losses=self.step_losses[: self.step].cpu() if mid_epoch else None,
            previous_weights=(
                {n: w.cpu() for n, w in zip(WEIGHT_LAYERS, self.previous_weights, strict=True)} if mid_epoch else None
            ),
        )


def _build(cfg: JobSpec, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    model = build_model(device, cfg.seed).to(memory_format=torch.channels_last)
    return model, make_optimizer(cfg, model, device), torch.Generator(device=device).manual_seed(cfg.seed)


def _sums(per_epoch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(per_epoch, device=device), torch.zeros((), device=device, dtype=torch.float64)
