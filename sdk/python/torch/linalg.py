"""torch.linalg (the norms; other functions by torch's ATen names, `torch.linalg_*`)."""

from . import _core


def vector_norm(x, ord=2, dim=None, keepdim=False, dtype=None):
    return _core.call("linalg_vector_norm", (x, ord, dim, keepdim), {"dtype": dtype})


def norm(x, ord=None, dim=None, keepdim=False, dtype=None):
    if ord is None and dim is None:
        return vector_norm(x.flatten(), 2, None, keepdim, dtype)
    return _core.call("linalg_norm", (x, ord, dim, keepdim), {"dtype": dtype})


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, dtype=None):
    return _core.call("linalg_matrix_norm", (x, ord, list(dim), keepdim), {"dtype": dtype})
