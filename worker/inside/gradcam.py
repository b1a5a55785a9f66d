"""Where the network looked: Grad-CAM at conv5 (Selvaraju et al. 2017) and plain gradient saliency (Simonyan et
al. 2014), for one image and one class, in one forward and one backward pass.

Grad-CAM weighs each of conv5's rectified feature maps A_k by the mean gradient of the class's score (the logit,
before the softmax) over that map, α_k = mean_ij ∂y_c/∂A_k[i, j], and keeps the positive part of Σ_k α_k A_k. It is
taken at conv5 because that is the last layer whose maps still have a layout: everything after it (a max-pool,
then three fully connected layers) mixes all positions, and conv5's maps carry the network's most class-specific
features. The price is resolution: conv5's maps are 13×13 at 224 px (3×3 at 64 px), upsampled for the picture.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

from worker.inside.activations import RELU_INDEX, classify

TARGET_LAYER = "conv5"


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM and saliency for one image and one class, with the network's probabilities."""

    class_index: int
    probabilities: torch.Tensor  # (classes,)
    cam: torch.Tensor  # (h, w) at conv5's resolution, ≥ 0, in the score's units per activation
    saliency: torch.Tensor  # (S, S): max over colour channels of |∂y_c/∂x|

    def heat_map(self, size: int) -> torch.Tensor:
        """The Grad-CAM upsampled bilinearly to `size`×`size` and scaled to 0–1 (all zeros when it is all zeros)."""
        up = F.interpolate(self.cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        top = up.max()
        return up / top if top > 0 else up


def explain(model: nn.Module, x: torch.Tensor, class_index: int | None = None) -> Explanation:
    """Grad-CAM at conv5 and gradient saliency for one image `x` (1, 3, S, S) and class `class_index` (the
    predicted class when None)."""
    features = model.get_submodule("features")
    assert isinstance(features, nn.Sequential) and x.shape[0] == 1
    split = RELU_INDEX[TARGET_LAYER] + 1
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        maps = features[:split](x)  # conv5's rectified maps, A
        logits = classify(model, maps)[0]
        chosen = int(logits.argmax()) if class_index is None else class_index
        grad_maps, grad_x = torch.autograd.grad(logits[chosen], (maps, x))
    weights = grad_maps.mean(dim=(2, 3), keepdim=True)  # α_k
    cam = F.relu((weights * maps.detach()).sum(dim=1))[0]
    saliency = grad_x.abs().amax(dim=1)[0]
    return Explanation(chosen, torch.softmax(logits.detach(), dim=0), cam.float(), saliency.float())
