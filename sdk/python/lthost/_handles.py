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


class _HandleDrop(list):
    """The finalizer of one host handle, `[func, args]`: `func(*args)` once, when this object
    dies or is called, unless detached first (what componentize-py does on `with` exit and
    when a handle moves back to the host). A list, so that making one runs no Python code."""

    __slots__ = ()

    def __call__(self, _=None):
        func, self[0] = self[0], None
        if func is not None:
            return func(*self[1])

    def detach(self):
        func, self[0] = self[0], None
        if func is None:
            return None
        return (None, func, self[1], {})

    def peek(self):
        return None if self[0] is None else (None, self[0], self[1], {})

    @property
    def alive(self):
        return self[0] is not None

    atexit = False

    def __del__(self):
        func = self[0]
        if func is not None:
            self[0] = None
            func(*self[1])


class finalize(_finalize):
    """`weakref.finalize`, with the runtime's resource drops made `_HandleDrop`s."""

    __slots__ = ()

    def __new__(cls, obj, func, /, *args, **kwargs):
        if func is _drop_resource and not kwargs:
            return _HandleDrop((func, args))
        return super().__new__(cls)


if weakref.finalize is _finalize:
    weakref.finalize = finalize
