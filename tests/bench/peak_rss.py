#!/usr/bin/env python3
"""Runs a command and reports its peak anonymous resident memory (RssAnon: what the process owns,
not the page cache of files it maps) and peak RSS, sampled every 10 ms from /proc, its wall time
and its CPU time (user + system: less sensitive than wall time to a loaded machine). Children count too (the sum over the process tree);
the largest peak of any one process of the tree is reported beside it (processes that split a model
between them, latmix learn --split layers). Used by tests/bench/bigmodel_bench.sh and split_bench.sh.
usage: peak_rss.py [--label TEXT] -- CMD ARGS..."""
import os, resource, subprocess, sys, time

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out

def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def main():
    args = sys.argv[1:]
    label = ""
    if args[:1] == ["--label"]:
        label, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    start = time.monotonic()
    proc = subprocess.Popen(args)
    peak_anon = peak_rss = 0
    each = {}  # pid -> its peak RssAnon
    while proc.poll() is None:
        pids = tree(proc.pid)
        anon = {p: status_kb(p, "RssAnon") for p in pids}
        for p, kb in anon.items():
            each[p] = max(each.get(p, 0), kb)
        peak_anon = max(peak_anon, sum(anon.values()))
        peak_rss = max(peak_rss, sum(status_kb(p, "VmRSS") for p in pids))
        time.sleep(0.01)
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    one = max(each.values()) if each else 0
    print(f"PEAK {label}: RssAnon {peak_anon / 1024 / 1024:.2f} GiB (one process at most {one / 1024 / 1024:.2f}), "
          f"RSS {peak_rss / 1024 / 1024:.2f} GiB, "
          f"wall {wall:.1f} s, cpu {usage.ru_utime + usage.ru_stime:.1f} s, exit {proc.returncode}",
          file=sys.stderr, flush=True)
    sys.exit(proc.returncode)

main()
