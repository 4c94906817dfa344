"""torch.nn: Module, Parameter, the containers and layers, `functional`, `init`."""

from . import functional, init, utils  # noqa: F401
from .layers import *  # noqa: F401,F403
from .layers import Identity, Linear  # noqa: F401
from .cells import GRUCell, LSTMCell, RNNCell, RNNCellBase  # noqa: F401
from .instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d  # noqa: F401
from .padding import *  # noqa: F401,F403
from .module import Module, ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential  # noqa: F401
from .parameter import Buffer, Parameter  # noqa: F401
from .recurrent import GRU, LSTM, RNN, RNNBase  # noqa: F401
from .transformer import (  # noqa: F401
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
