"""`lightning.pytorch.tuner`: Lightning's Tuner is lthost's own searches, run by the host —
`lthost fit --lr-find` (Tuner.lr_find, then the fit; settings in the run config's
`[lr_find]`), `lthost fit --scale-batch-size` (Tuner.scale_batch_size, `[scale_batch_size]`),
or the LearningRateFinder / BatchSizeFinder callbacks. Importing it works, so a file that
imports it builds; making a Tuner in the file says where the search is."""

from torch._core import unsupported

Tuner = unsupported("Tuner", "lthost runs the tuner's searches itself: `lthost fit --lr-find` or `lthost fit "
                             "--scale-batch-size` (settings in [lr_find] / [scale_batch_size] of the run config)")
