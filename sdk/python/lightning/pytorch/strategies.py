"""lightning.pytorch.strategies: importable so a Lightning file that names a strategy builds;
lthost's strategies are set in the run config or on the command line (`--strategy ddp`), and
`lthost build` keeps a `Trainer(strategy=DDPStrategy(...))` of the file's `__main__` block as
the plugin's default."""

from torch._core import unsupported

DDPStrategy = unsupported("DDPStrategy", "set the strategy in the run config or with --strategy ddp", read_at_build=True)
SingleDeviceStrategy = unsupported("SingleDeviceStrategy", "lthost runs one device unless --devices says more", read_at_build=True)
