"""Samples the resident memory of a process tree until its root exits, by role.

    rss_sampler.py PID OUT.json

Roles: `jvm` (a java process: Spark's driver, which in local mode is the executor too),
`python_workers` (PySpark's daemon and the workers it forks, summed), `python_driver` (the
python that runs the job script), `other` (anything else, e.g. the categorizer binary).
Writes the peak of each role, and of the whole tree, in MB."""

import json
import os
import sys
import time


def children():
    kids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def tree(root, kids):
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def role(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None
    if "java" in cmd.split(" ")[0]:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark/daemon" in cmd or "pyspark.worker" in cmd:
        return "python_workers"
    if "python" in cmd.split(" ")[0]:
        return "python_driver"
    if cmd.strip():
        return "other"
    return None


def main():
    root, out = int(sys.argv[1]), sys.argv[2]
    peak = {"jvm": 0.0, "python_workers": 0.0, "python_driver": 0.0, "other": 0.0, "total": 0.0}
    while os.path.exists(f"/proc/{root}"):
        now = dict.fromkeys(peak, 0.0)
        for pid in tree(root, children()):
            r = role(pid)
            if r:
                m = rss_mb(pid)
                now[r] += m
                now["total"] += m
        for k in peak:
            peak[k] = max(peak[k], now[k])
        time.sleep(0.2)
    with open(out, "w") as f:
        json.dump({k: round(v) for k, v in peak.items()}, f)


if __name__ == "__main__":
    main()
