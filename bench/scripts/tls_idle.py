#!/usr/bin/env python3
"""Server memory per idle connection, plain against TLS (loopback only).

Starts nothing: point it at a running tandem (its address and pid). Opens N
WebSocket or SSE connections in development mode, reads each welcome, holds
them, and prints the server's RSS before and after (/proc/PID/status).

    python3 bench/scripts/tls_idle.py --addr 127.0.0.1:8080 --pid PID -n 2000 --kind ws
    python3 bench/scripts/tls_idle.py --addr 127.0.0.1:8443 --pid PID -n 2000 --kind ws --ca ca.pem

With --ca the connections are TLS (verified against that CA, server name
127.0.0.1). Every connect and read has a deadline; the run stops by itself.
"""
import argparse
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_one(host, port, kind, player, ctx, tls_version):
    raw = socket.create_connection((host, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=host) if ctx else raw
    if kind == "ws":
        req = (f"GET /ws?player_id={player} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
    else:
        req = f"GET /sse?player_id={player} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    s.sendall(req.encode())
    got = b""
    while b"welcome" not in got:
        chunk = s.recv(4096)
        if not chunk or len(got) > 16384:
            raise RuntimeError(got.decode(errors="replace"))
        got += chunk
    if tls_version is not None and ctx:
        tls_version.add(s.version())
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--kind", choices=["ws", "sse"], default="ws")
    ap.add_argument("--ca", help="PEM CA: connect with TLS")
    args = ap.parse_args()
    host, port = args.addr.rsplit(":", 1)
    ctx = None
    if args.ca:
        ctx = ssl.create_default_context(cafile=args.ca)
    versions = set()
    before = rss_kib(args.pid)
    conns = []
    started = time.monotonic()
    for i in range(args.n):
        if time.monotonic() - started > 300:
            break
        try:
            conns.append(open_one(host, int(port), args.kind, f"m{i}", ctx, versions))
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"connect failed: {e}", file=sys.stderr)
    time.sleep(3)
    after = rss_kib(args.pid)
    n = max(len(conns), 1)
    print(f"{'tls ' + ','.join(sorted(versions)) if ctx else 'plain'} {args.kind}: {len(conns)} connections; "
          f"server RSS {before} KiB -> {after} KiB: {(after - before) / n:.2f} KiB per connection")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
