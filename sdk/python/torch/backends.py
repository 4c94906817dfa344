"""torch.backends, as a plugin sees it: the flags a Lightning file sets (cuDNN's benchmark and
deterministic, TF32) are kept and read back; lthost's host does not apply them (libtorch's
defaults stay: no cuDNN autotuning, no TF32 matmuls), and setting one to another value than
that says so once. On the CPU none of them changes a result in torch either."""

import sys

_said = set()


def _note(what, value, why="lthost runs with libtorch's defaults"):
    if what not in _said:
        _said.add(what)
        print(f"note: {what} = {value!r} is kept but not applied: {why}", file=sys.stderr)


class _Flags:
    """A namespace of flags with torch's defaults; setting one away from lthost's behaviour
    leaves a note."""

    def __init__(self, name, applied, **flags):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_applied", applied)
        for k, v in flags.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, key, value):
        if key in self._applied and value != self._applied[key]:
            _note(f"torch.backends.{self._name}.{key}", value)
        object.__setattr__(self, key, value)


class _Cudnn(_Flags):
    def is_available(self):
        from . import cuda as _cuda

        return _cuda.is_available()

    def version(self):
        return None


cudnn = _Cudnn("cudnn", {"benchmark": False, "deterministic": False}, enabled=True, benchmark=False, deterministic=False, allow_tf32=True)


class _Matmul(_Flags):
    """torch.backends.cuda.matmul: `allow_tf32` is torch's float32 matmul precision seen from
    here (True unless "highest"; setting it sets "high" or "highest")."""

    def __getattr__(self, key):
        if key == "allow_tf32":
            import torch

            return torch.get_float32_matmul_precision() != "highest"
        raise AttributeError(key)

    def __setattr__(self, key, value):
        if key == "allow_tf32":
            import torch

            torch.set_float32_matmul_precision("high" if value else "highest")
            return
        super().__setattr__(key, value)


class _Cuda:
    matmul = _Matmul("cuda.matmul", {}, allow_fp16_reduced_precision_reduction=True, allow_bf16_reduced_precision_reduction=True)

    @staticmethod
    def is_built():
        return True


cuda = _Cuda()


class _Unavailable:
    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


mps = _Unavailable()
mkldnn = _Flags("mkldnn", {}, enabled=True)
