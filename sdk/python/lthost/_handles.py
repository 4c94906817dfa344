"""Dropping host handles when Python drops their objects, without a `weakref.finalize` each.

componentize-py gives every resource handle the host returns (every tensor an op makes) a
`weakref.finalize` that drops it in the host when the object dies: a weak reference with a
callback, an entry in a class-wide registry and a counter per handle, several microseconds
per op in CPython compiled to WebAssembly, more than the host call itself. The runtime takes
`weakref.finalize` when the component is initialised, after importing this package, so
installing a subclass here gives handles a plain finalizer instead: an object held only by
the handle's object, which drops the host handle when its owner is collected (reference
counting makes that the same moment the weak reference would fire). Every other use of
`weakref.finalize` (a function other than the runtime's resource drop) is untouched.
"""

import weakref

import componentize_py_runtime

_drop_resource = componentize_py_runtime.drop_resource
_finalize = weakref.finalize


class _HandleDrop:
    """The finalizer of one host handle: `func(*args)` once, when this object dies or is
    called, unless detached first (what componentize-py does on `with` exit and when a
    handle moves back to the host)."""

    __slots__ = ("func", "args")

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __call__(self, _=None):
        func, self.func = self.func, None
        if func is not None:
            return func(*self.args)

    def detach(self):
        func, self.func = self.func, None
        if func is None:
            return None
        return (None, func, self.args, {})

    def peek(self):
        return None if self.func is None else (None, self.func, self.args, {})

    @property
    def alive(self):
        return self.func is not None

    atexit = False

    def __del__(self):
        func, self.func = self.func, None
        if func is not None:
            func(*self.args)


class finalize(_finalize):
    """`weakref.finalize`, with the runtime's resource drops made `_HandleDrop`s."""

    __slots__ = ()

    def __new__(cls, obj, func, /, *args, **kwargs):
        if func is _drop_resource and not kwargs:
            return _HandleDrop(func, args)
        return super().__new__(cls)


if weakref.finalize is _finalize:
    weakref.finalize = finalize
