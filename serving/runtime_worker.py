"""Run inside the serving image's TensorFlow: load SavedModels as TF Serving does, run feeds.

Not imported by kexport: `serving.runtime_check` runs this file with the Python of a separate
virtual environment that holds only `tensorflow-cpu` of the image's version (and its
dependencies), as `python -I runtime_worker.py JOB.json RESULT.json`. So it imports nothing of
kexport, only the standard library, numpy and tensorflow.

TF Serving loads every SavedModel, TF1 or TF2, through the session-based SavedModel loader with
the `serve` tag and calls signatures by tensor name; so does this worker, which is what makes an
op or attribute the older TensorFlow does not know fail here as it would fail in the image.

JOB: [{"key": "model/version", "dir": PATH, "feeds": NPZ or null, "count": N, "outputs": NPZ}],
feeds stored as "<index>/<input name>". RESULT: {"tensorflow_version": ..., "versions": {key:
{"ok": bool, "stage": "load"|"run"|"", "error": str, "outputs": NPZ}}}, outputs stored as "<index>/<output name>".
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # after the log level: TensorFlow reads it at import
import tensorflow as tf


def run_version(job: dict) -> dict:
    """Load one SavedModel in a fresh graph and session, run its feeds through serving_default."""
    feeds = []
    if job["feeds"]:
        with np.load(job["feeds"], allow_pickle=False) as archive:
            feeds = [{} for _ in range(job["count"])]
            for key in archive.files:
                index, name = key.split("/", 1)
                feeds[int(index)][name] = archive[key]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], job["dir"])
        except Exception as error:  # noqa: BLE001 - reported with the stage it failed in
            return {"ok": False, "stage": "load", "error": f"{type(error).__name__}: {error}"}
        signature = meta_graph.signature_def["serving_default"]
        outputs = {}
        for index, feed in enumerate(feeds):
            fetches = {alias: info.name for alias, info in signature.outputs.items()}
            feed_dict = {signature.inputs[alias].name: value for alias, value in feed.items()}
            for alias, value in session.run(fetches, feed_dict).items():
                outputs[f"{index}/{alias}"] = value
    np.savez(job["outputs"], **outputs)
    return {"ok": True, "stage": "", "error": "", "outputs": job["outputs"]}


def main(job_file: str, result_file: str) -> int:
    with open(job_file, encoding="utf-8") as stream:
        jobs = json.load(stream)
    results = {"tensorflow_version": tf.__version__, "versions": {}}
    for job in jobs:
        try:
            results["versions"][job["key"]] = run_version(job)
        except Exception as error:  # noqa: BLE001 - every failure is reported, per version
            results["versions"][job["key"]] = {"ok": False, "stage": "run", "outputs": None,
                                               "error": f"{type(error).__name__}: {error}"}
    with open(result_file, "w", encoding="utf-8") as stream:
        json.dump(results, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
