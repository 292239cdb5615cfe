"""The local Ray a sweep starts (`speedrun sweep` without --address) listens on loopback only:
its GCS, raylet, workers and the driver, checked on the sockets the real processes hold."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys

from processes import (  # tests/processes.py
    descendants,
    in_sessions,
    listening,
    session_of,
)

DRIVER = """
import json, sys
import ray
from ray._private import ray_constants
from orchestrator.sweep import init_ray

assert init_ray(None)
ray.get(ray.remote(lambda: 1).remote())  # a worker that ran a task, as a trial's does
node = ray._private.worker._global_node
print(json.dumps({"node_ip": node.node_ip_address, "cluster_switch": ray_constants.ENABLE_RAY_CLUSTER}), flush=True)
sys.stdin.read()  # until the test has looked
ray.shutdown()
"""


def loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv6 socket bound to it
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def command(pid: int) -> str:
    return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")


def test_a_local_ray_listens_on_loopback_only() -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    sessions = {driver.pid}
    try:
        line = driver.stdout.readline()
        assert line, driver.stderr.read()
        started = json.loads(line)
        ray_processes = [driver.pid, *descendants(driver.pid)]
        sessions |= {s for pid in ray_processes if (s := session_of(pid)) is not None}
        addresses = {pid: found for pid, found in listening(ray_processes).items() if found}
        programs = {os.path.basename(command(pid)) for pid in addresses}
        assert {"gcs_server", "raylet"} <= programs and driver.pid in addresses, programs
        exposed = [(command(pid), a) for pid, found in addresses.items() for a in found if not loopback(a[0])]
        assert not exposed, f"listening beyond loopback: {exposed}"
        assert started == {"node_ip": "127.0.0.1", "cluster_switch": True}  # Ray's switch is back as it was
        driver.stdin.close()
        assert driver.wait(timeout=60) == 0, driver.stderr.read()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for pid in in_sessions(sessions):
            os.kill(pid, signal.SIGKILL)
