"""torch.nn.RNNCell, LSTMCell and GRUCell: one step of a recurrent layer. torch's parameters
(`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, drawn uniform(-1/sqrt(hidden), 1/sqrt(hidden))
in that order) and ATen's fused `rnn_tanh_cell`/`rnn_relu_cell`/`lstm_cell`/`gru_cell`, batched
or not."""

import math

from .. import _core, empty, zeros
from . import init
from .module import Module
from .parameter import Parameter


class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def _batched(self, input):
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        return input.dim() == 2

    def _zeros(self, input):
        return zeros(input.size(0), self.hidden_size, dtype=input.dtype)

    def _cell(self, name, input, hx):
        return _core.call(name, (input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh), {})

    def _one_state(self, name, input, hx):
        """RNNCell's and GRUCell's step (one hidden state), batched or not."""
        batched = self._batched(input)
        if not batched:
            input = input.unsqueeze(0)
        hx = self._zeros(input) if hx is None else (hx if batched else hx.unsqueeze(0))
        out = self._cell(name, input, hx)
        return out if batched else out.squeeze(0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._one_state("rnn_tanh_cell" if self.nonlinearity == "tanh" else "rnn_relu_cell", input, hx)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4)

    def forward(self, input, hx=None):
        batched = self._batched(input)
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            hx = (self._zeros(input), self._zeros(input))
        elif not batched:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
        h, c = self._cell("lstm_cell", input, list(hx))
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3)

    def forward(self, input, hx=None):
        return self._one_state("gru_cell", input, hx)
