"""lightning.pytorch.cli: importable so a Lightning file whose `__main__` block runs
LightningCLI builds. lthost is the command line: `lthost fit model.wasm --config config.yaml`
reads LightningCLI's configs, and `lthost build` keeps the block's `seed_everything_default`
and `trainer_defaults` as the plugin's defaults (`lightning/_main_block.py`)."""

from typing import Any, Callable, Dict, List, Optional, Union

from torch._core import unsupported

LightningCLI = unsupported("LightningCLI", "lthost is the command line: `lthost fit model.wasm --config config.yaml`")
SaveConfigCallback = unsupported("SaveConfigCallback", "lthost's `--print_config` writes the run's config")
LightningArgumentParser = unsupported("LightningArgumentParser", "lthost is the command line")

# The type aliases Lightning files annotate their arguments with.
ArgsType = Optional[Union[List[str], Dict[str, Any]]]
OptimizerCallable = Callable[..., Any]
LRSchedulerCallable = Callable[..., Any]
LRSchedulerTypeUnion = Any
