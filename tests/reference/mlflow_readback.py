"""Reads one MLflow run (lthost's or Lightning's MLFlowLogger's) back with MLflow's own client
and prints it as one JSON object: run_id, experiment_id, experiment_name, status, run_name,
start_time/end_time (ms), tags (key -> value), params (key -> value), metrics (key ->
[[step, value], ...] in step order, from the full history) and artifacts ([[path, size], ...]
for every file, recursively, sorted). Non-finite metric values are written as the strings
"NaN", "Infinity" and "-Infinity" so that the output stays strict JSON.

    python mlflow_readback.py --tracking-uri URI (--run-id ID | --experiment NAME --run-name NAME)

With --run-name the newest run of that name in the experiment is read.
"""

import argparse
import json
import math
import sys

import mlflow
from mlflow.tracking import MlflowClient


def finite_or_str(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def find_run(client, experiment, run_name):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"no experiment named {experiment!r}")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        sys.exit(f"no run named {run_name!r} in experiment {experiment!r}")
    return runs[0].info.run_id


def artifacts(client, run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out += artifacts(client, run_id, f.path)
        else:
            out.append([f.path, f.file_size or 0])  # the server leaves file_size out for 0 bytes
    return out


def read(client, run_id):
    run = client.get_run(run_id)
    info, data = run.info, run.data
    metrics = {}
    for key in data.metrics:  # data.metrics holds only each key's latest value
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        metrics[key] = [[m.step, finite_or_str(m.value)] for m in history]
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "experiment_name": client.get_experiment(info.experiment_id).name,
        "status": info.status,
        "run_name": info.run_name,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "tags": dict(sorted(data.tags.items())),
        "params": dict(sorted(data.params.items())),
        "metrics": dict(sorted(metrics.items())),
        "artifacts": sorted(artifacts(client, run_id)),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--run-id")
    p.add_argument("--experiment", default="lightning_logs")
    p.add_argument("--run-name")
    args = p.parse_args()
    if not (args.run_id or args.run_name):
        p.error("give --run-id or --run-name")
    mlflow.set_tracking_uri(args.tracking_uri)  # the artifact repository resolves mlflow-artifacts:/ with it
    client = MlflowClient(args.tracking_uri)
    run_id = args.run_id or find_run(client, args.experiment, args.run_name)
    print(json.dumps(read(client, run_id)))
