"""torch.nn.InstanceNorm1d/2d/3d: each sample's channels normalised over their own values;
affine weight and bias and running statistics only when asked for (torch's defaults: neither),
an input without a batch dimension taken as one sample."""

import warnings

from . import functional as F
from .layers import norm_state
from .module import Module


class _InstanceNorm(Module):
    _dims = 2  # of an input without its batch dimension

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None, dtype=None):
        super().__init__()
        norm_state(self, num_features, eps, momentum, affine, track_running_stats)

    def forward(self, input):
        if input.dim() not in (self._dims, self._dims + 1):
            raise ValueError(f"expected {self._dims}D or {self._dims + 1}D input (got {input.dim()}D input)")
        feature_dim = input.dim() - self._dims
        if input.size(feature_dim) != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features ({self.num_features}), but got: {input.size(feature_dim)}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this warning by not passing in num_features, which is not used because affine=False", stacklevel=2)
        unbatched = input.dim() == self._dims
        if unbatched:
            input = input.unsqueeze(0)
        out = F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              self.momentum if self.momentum is not None else 0.0, self.eps)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}"


class InstanceNorm1d(_InstanceNorm):
    _dims = 2


class InstanceNorm2d(_InstanceNorm):
    _dims = 3


class InstanceNorm3d(_InstanceNorm):
    _dims = 4
