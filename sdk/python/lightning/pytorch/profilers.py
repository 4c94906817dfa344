"""`lightning.pytorch.profilers`: importable, so a file that imports them builds. lthost's
timings are its run summary's (`timer`, `data wait`); a profiler made in the file is an error
that says so."""

from torch._core import unsupported

_WHY = "lthost has no Lightning profiler; its run summary reports step, epoch and data-wait times"
Profiler = unsupported("Profiler", _WHY)
SimpleProfiler = unsupported("SimpleProfiler", _WHY)
AdvancedProfiler = unsupported("AdvancedProfiler", _WHY)
PyTorchProfiler = unsupported("PyTorchProfiler", _WHY)
PassThroughProfiler = unsupported("PassThroughProfiler", _WHY)
XLAProfiler = unsupported("XLAProfiler", _WHY)
