"""kubectl exec's job done by the official Python client, which speaks
v4.channel.k8s.io over its WebSocket: a command's output, stderr and exit
code, and stdin written then closed. Prints one JSON line of what it saw.

Usage: exec.py KUBECONFIG POD
"""

import json
import sys

from kubernetes import client, config
from kubernetes.stream import stream


def main():
    config.load_kube_config(sys.argv[1])
    pod = sys.argv[2]
    api = client.CoreV1Api()
    hostname = stream(
        api.connect_get_namespaced_pod_exec, pod, "default",
        command=["hostname"], stdout=True, stderr=True, stdin=False,
        tty=False)
    failing = stream(
        api.connect_get_namespaced_pod_exec, pod, "default",
        command=["sh", "-c", "echo out; echo err >&2; exit 3"],
        stdout=True, stderr=True, stdin=False, tty=False,
        _preload_content=False)
    failing.run_forever(timeout=30)
    print(json.dumps({
        "hostname": hostname,
        "stdout": failing.read_stdout(),
        "stderr": failing.read_stderr(),
        "code": failing.returncode,
    }))


if __name__ == "__main__":
    main()
