#!/usr/bin/env python3
"""The baseline of `shepherd bench ingest --flood`: a straightforward batched reader in Python.

Reads the given pseudo-terminals (raw mode, one poll loop, 64 KiB reads), splits lines on LF,
and stores them with executemany in one SQLite table (WAL, synchronous=NORMAL, as shepherd's
database), committing every 10,000 lines or 250 ms, whichever comes first. It stores raw text
only: no parsing, no events, no masking — the cheapest thing that keeps every line.

Protocol on stdin/stdout (driven by the bench): prints "ready" once the ports are open; on
"go" starts the clock; on "total N" keeps reading until N lines are stored; then prints one
JSON object {stored, seconds, cpu_percent, peak_rss_kib} and exits.
"""
import json
import os
import resource
import select
import sqlite3
import sys
import time
import tty

BATCH_LINES = 10_000
BATCH_SECS = 0.25


def main():
    db_path, ports = sys.argv[1], sys.argv[2:]
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, miner_id INTEGER, ts INTEGER, text TEXT)")
    fds = {}
    for i, p in enumerate(ports):
        fd = os.open(p, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        fds[fd] = [i, b""]
    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN)
    stdin = sys.stdin.fileno()
    poll.register(stdin, select.POLLIN)
    print("ready", flush=True)

    pending, stored, total = [], 0, None
    first_at, t0, cpu0 = None, None, None
    command = b""

    def flush():
        nonlocal pending, stored, first_at
        if pending:
            db.execute("BEGIN")
            db.executemany("INSERT INTO logs (miner_id, ts, text) VALUES (?, ?, ?)", pending)
            db.execute("COMMIT")
            stored += len(pending)
            pending = []
        first_at = None

    while total is None or stored < total:
        for fd, _ in poll.poll(50):
            if fd == stdin:
                command += os.read(stdin, 4096)
                while b"\n" in command:
                    line, command = command.split(b"\n", 1)
                    if line == b"go":
                        t0 = time.monotonic()
                        ru = resource.getrusage(resource.RUSAGE_SELF)
                        cpu0 = ru.ru_utime + ru.ru_stime
                    elif line.startswith(b"total "):
                        total = int(line.split()[1])
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            entry = fds[fd]
            parts = (entry[1] + data).split(b"\n")
            entry[1] = parts.pop()
            now = int(time.time() * 1000)
            pending.extend((entry[0], now, p.rstrip(b"\r").decode("utf-8", "replace")) for p in parts)
            if first_at is None and pending:
                first_at = time.monotonic()
        if len(pending) >= BATCH_LINES or (first_at is not None and time.monotonic() - first_at >= BATCH_SECS):
            flush()
        if total is not None and stored + len(pending) >= total:
            flush()
    seconds = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss survives exec (it would report the bench's own peak): VmHWM is this process's.
    with open("/proc/self/status") as f:
        hwm = next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), 0)
    print(json.dumps({
        "stored": stored,
        "seconds": seconds,
        "cpu_percent": 100.0 * (ru.ru_utime + ru.ru_stime - cpu0) / seconds,
        "peak_rss_kib": hwm,
    }), flush=True)


if __name__ == "__main__":
    main()
