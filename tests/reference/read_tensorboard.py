"""Reads a TensorBoard log directory (lthost's or Lightning's) with the `tensorboard` package
and prints, as JSON, every scalar series (tag -> [[step, value], ...]) and the hparams
plugin's data: the session-start hyper-parameters, the experiment's hyper-parameter infos
(name -> data type name) and metric tags, and the session-end status.

    python read_tensorboard.py LOG_DIR
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2


def read(log_dir):
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    hparams, infos, metrics, status = {}, {}, [], None
    try:
        contents = acc.PluginTagToContent("hparams")
    except KeyError:  # nothing was logged through the hparams plugin
        contents = {}
    for tag, content in contents.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        for k, v in data.session_start_info.hparams.items():
            kind = v.WhichOneof("kind")
            hparams[k] = getattr(v, kind) if kind else None
        for info in data.experiment.hparam_infos:
            infos[info.name] = api_pb2.DataType.Name(info.type)
        metrics += [m.name.tag for m in data.experiment.metric_infos]
        if data.HasField("session_end_info"):
            status = api_pb2.Status.Name(data.session_end_info.status)
    return {"scalars": scalars, "hparams": hparams, "hparam_infos": infos, "metrics": sorted(metrics),
            "session_end": status}


if __name__ == "__main__":
    print(json.dumps(read(sys.argv[1])))
