"""The official Python client (PyPI `kubernetes`) against ch05's API server.

Run by tests/ch05_python.rs with KUBECONFIG set and a namespace name as
its argument. Prints one line per step; the Rust test checks them.
The server compacts its store every second (keeping one second of
history), so a watch from an old resourceVersion gets 410 Gone.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def pod(name, labels):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {"name": "kubia", "image": "kubia",
                 "ports": [{"containerPort": 8080}]}
            ]
        },
    }


def added(v1, ns, rv, name):
    """Watches from rv until the pod `name` is ADDED; the events seen."""
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, resource_version=rv,
                          timeout_seconds=10, _request_timeout=15):
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == name:
            w.stop()
    return seen


def main():
    ns = sys.argv[1]
    config.load_kube_config()
    v1 = client.CoreV1Api()

    v1.create_namespace({"metadata": {"name": ns}})
    v1.create_namespaced_pod(ns, pod("kubia-1", {"app": "kubia"}))
    v1.create_namespaced_pod(ns, pod("other", {"app": "other"}))
    listed = v1.list_namespaced_pod(ns, label_selector="app=kubia")
    print("list", [p.metadata.name for p in listed.items])
    rv = listed.metadata.resource_version

    # A watch from the list's resourceVersion sees what came after it.
    v1.create_namespaced_pod(ns, pod("kubia-2", {"app": "kubia"}))
    print("watch", added(v1, ns, rv, "kubia-2"))

    # A dict body goes as a strategic merge patch.
    patched = v1.patch_namespaced_pod(
        "kubia-1", ns, {"metadata": {"labels": {"env": "prod"}}})
    print("patch", sorted(patched.metadata.labels.items()))

    try:
        v1.create_namespaced_pod(ns, pod("kubia-1", {"app": "kubia"}))
    except ApiException as e:
        print("create again", e.status, e.reason)

    # Many writes, then the server compacts: rv is history now.
    for i in range(20):
        v1.patch_namespaced_pod(
            "kubia-1", ns, {"metadata": {"annotations": {"n": str(i)}}})
    # Two compactions (1 s apart) after the writes: the first notes the
    # revision, the second forgets what came before it.
    time.sleep(5)
    try:
        added(v1, ns, rv, "never")
        print("old watch: no error")
    except ApiException as e:
        print("old watch", e.status)

    # An informer's recovery: list again, watch from the new version.
    relisted = v1.list_namespaced_pod(ns)
    v1.create_namespaced_pod(ns, pod("kubia-3", {"app": "kubia"}))
    print("rewatch", added(v1, ns, relisted.metadata.resource_version,
                           "kubia-3"))


if __name__ == "__main__":
    main()
