#!/usr/bin/env python3
"""The pipelining probe: can one client overwhelm a `gauntlet node` leader?

Starts three `gauntlet node` processes on loopback (data in a temporary directory, removed at
the end; every process killed on any exit), finds the leader, and for SECONDS (default 30)
runs one client that sends puts as fast as it can and never reads an answer, beside a second
client that does one put and one get every 100 ms and times them. Every 100 ms it samples the
leader's resident memory. At the end it prints one JSON line:

  flood_bytes_sent   what the flooding client got into the node (TCP takes the rest back)
  leader_rss_peak_mib, leader_rss_end_mib (after the flood ends and 2 s pass)
  still_leader       whether the same node leads at the end
  probe_ok, probe_failed, probe_p50_ms, probe_max_ms   the other client's operations

Usage: scripts/flood_probe.py [--gauntlet target/release/gauntlet] [--seconds 30]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_ports(n):
    # Ports below the ephemeral range are not taken by outgoing connections meanwhile.
    socks, ports = [], []
    port = 20000 + (os.getpid() * 7) % 8000
    while len(ports) < n:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            socks.append(s)
            ports.append(port)
        except OSError:
            pass
        port += 1
    for s in socks:
        s.close()
    return ports


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def call(addr, request, timeout=3.0):
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall((json.dumps(request) + "\n").encode())
        line = s.makefile().readline()
    return json.loads(line) if line else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gauntlet", default="target/release/gauntlet")
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    exe = shutil.which(args.gauntlet) or os.path.abspath(args.gauntlet)
    if not os.path.exists(exe):
        sys.exit(f"{args.gauntlet}: not found (cargo build --release -p harness)")

    tmp = tempfile.mkdtemp(prefix="gauntlet-flood-")
    ports = free_ports(6)
    peers, clients = ports[:3], ports[3:]
    procs = []
    try:
        for i in range(3):
            cmd = [exe, "node", "--id", str(i + 1), "--listen", f"127.0.0.1:{peers[i]}",
                   "--client", f"127.0.0.1:{clients[i]}", "--data-dir", f"{tmp}/n{i + 1}"]
            for j in range(3):
                if j != i:
                    cmd += ["--peer", f"{j + 1}=127.0.0.1:{peers[j]}",
                            "--peer-client", f"{j + 1}=127.0.0.1:{clients[j]}"]
            log = open(f"{tmp}/n{i + 1}.log", "w")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=log))

        leader = None
        deadline = time.time() + 30
        while leader is None and time.time() < deadline:
            for i in range(3):
                try:
                    a = call(("127.0.0.1", clients[i]), {"id": 1, "op": "put", "key": "x", "value": "0"})
                    if a and a.get("type") == "ok":
                        leader = i
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        if leader is None:
            sys.exit("no leader within 30 s")
        addr = ("127.0.0.1", clients[leader])
        pid = procs[leader].pid

        stop = threading.Event()
        sent = [0]

        def flood():
            s = socket.create_connection(addr)
            s.settimeout(1.0)
            n = 0
            while not stop.is_set():
                batch = "".join(
                    json.dumps({"id": n + k, "op": "put", "key": f"f{(n + k) % 64}", "value": "v" * 64}) + "\n"
                    for k in range(64)).encode()
                n += 64
                try:
                    s.sendall(batch)
                    sent[0] += len(batch)
                except (socket.timeout, OSError):
                    # The node stopped reading (backpressure), or closed the connection.
                    pass
            s.close()

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        peak, latencies, failed = 0.0, [], 0
        end = time.time() + args.seconds
        k = 0
        while time.time() < end:
            peak = max(peak, rss_mib(pid))
            k += 1
            t0 = time.time()
            try:
                a = call(addr, {"id": k, "op": "put", "key": "probe", "value": str(k)})
                b = call(addr, {"id": k, "op": "get", "key": "probe"})
                if a and a.get("type") == "ok" and b and b.get("type") == "ok":
                    latencies.append((time.time() - t0) * 1000)
                else:
                    failed += 1
            except OSError:
                failed += 1
            time.sleep(0.1)
        stop.set()
        flooder.join(timeout=5)
        time.sleep(2)
        rss_end = rss_mib(pid)
        still = call(addr, {"id": 0, "op": "put", "key": "x", "value": "1"})
        latencies.sort()
        print(json.dumps({
            "seconds": args.seconds,
            "flood_bytes_sent": sent[0],
            "leader_rss_peak_mib": round(peak, 1),
            "leader_rss_end_mib": round(rss_end, 1),
            "still_leader": bool(still and still.get("type") == "ok"),
            "probe_ok": len(latencies),
            "probe_failed": failed,
            "probe_p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
            "probe_max_ms": round(latencies[-1], 2) if latencies else None,
        }))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
