"""Reads an lthost TensorBoard log directory with the `tensorboard` package and prints, as
JSON, every scalar series (tag -> [[step, value], ...]) and the hparams plugin's
session-start hyper-parameters.

    python read_tensorboard.py LOG_DIR
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

acc = EventAccumulator(sys.argv[1])
acc.Reload()
scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
hparams = {}
for tag, content in acc.PluginTagToContent("hparams").items():
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    for k, v in data.session_start_info.hparams.items():
        hparams[k] = v.number_value if v.HasField("number_value") else (v.string_value if v.HasField("string_value") else v.bool_value)
print(json.dumps({"scalars": scalars, "hparams": hparams}))
