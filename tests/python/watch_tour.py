"""The official Python client (PyPI `kubernetes`) watching the tour's pods.

Run by tests/ch05_tour.rs beside `ch05 tour`, with the path of the admin
kubeconfig the tour's cluster will write as its argument. Waits for the
cluster, lists the pods of `default`, then watches them from the list's
resourceVersion, watching again from the last one it saw when a watch
ends and listing again when that is too old (410 Gone). Prints one JSON
line per pod it saw listed or changed, flushed at once, until the test
stops it (the cluster goes down with the tour; until then it retries).
"""

import json
import os
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def emit(kind, pod):
    status = pod.status or client.V1PodStatus()
    statuses = status.container_statuses or []
    print(json.dumps({
        "type": kind,
        "name": pod.metadata.name,
        "rv": pod.metadata.resource_version,
        "phase": status.phase,
        "ready": bool(statuses) and all(s.ready for s in statuses),
        "node": pod.spec.node_name,
        "deleting": pod.metadata.deletion_timestamp is not None,
    }), flush=True)


def connect(path):
    """A CoreV1Api once the kubeconfig exists and the server answers."""
    while True:
        try:
            if os.path.exists(path):
                v1 = client.CoreV1Api(
                    config.new_client_from_config(config_file=path))
                v1.list_namespaced_pod("default", limit=1,
                                       _request_timeout=5)
                return v1
        except Exception:  # not written yet, or not listening yet
            pass
        time.sleep(0.1)


def listed(v1):
    pods = v1.list_namespaced_pod("default", _request_timeout=10)
    for pod in pods.items:
        emit("LISTED", pod)
    return pods.metadata.resource_version


def main():
    v1 = connect(sys.argv[1])
    rv = listed(v1)
    print(json.dumps({"type": "WATCHING"}), flush=True)
    while True:
        try:
            w = watch.Watch()
            for event in w.stream(v1.list_namespaced_pod, "default",
                                  resource_version=rv, timeout_seconds=30,
                                  _request_timeout=40):
                pod = event["object"]
                rv = pod.metadata.resource_version
                emit(event["type"], pod)
        except ApiException as e:
            if e.status == 410:
                rv = listed(v1)
            else:
                time.sleep(0.2)
        except Exception:  # the server restarting, or gone for good
            time.sleep(0.2)


if __name__ == "__main__":
    main()
