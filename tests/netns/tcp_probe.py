"""TCP probes between two emulated hosts (tests/netns/hosts.sh): per-hop latency and throughput.

Standard library only, so that it runs from the system's python3 in any namespace.

  tcp_probe.py serve ADDR PORT                 one connection: echo 1-byte pings, or drain a stream, then exit
  tcp_probe.py pingpong ADDR PORT [ROUNDS]     ROUNDS (200) round trips of 1 byte, TCP_NODELAY on both sides;
                                               prints `pingpong rounds <n> median_rtt_us <x> min_rtt_us <y>`
  tcp_probe.py stream ADDR PORT BYTES          sends BYTES, waits for the server's 1-byte receipt of the last one;
                                               prints `stream bytes <n> seconds <s> mbit_per_s <r>`

The client retries its connect for up to 10 s, so the server may be started just before it. Every socket has a
timeout (60 s), so that neither side waits forever on a cut link.
"""

import socket
import statistics
import sys
import time

TIMEOUT_S = 60.0
CHUNK = 1 << 20


def connect(addr: str, port: int) -> socket.socket:
    deadline = time.monotonic() + 10.0
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=TIMEOUT_S)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise ConnectionError("peer closed")
        buf += got
    return bytes(buf)


def serve(addr: str, port: int) -> None:
    with socket.socket() as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(1)
        ls.settimeout(TIMEOUT_S)
        conn, _ = ls.accept()
    with conn:
        conn.settimeout(TIMEOUT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind = recv_exact(conn, 1)
        if kind == b"P":  # pings: echo each byte until the client closes
            while True:
                b = conn.recv(1)
                if not b:
                    return
                conn.sendall(b)
        else:  # a stream: 8-byte length, then that many bytes, then one byte of receipt
            left = int.from_bytes(recv_exact(conn, 8), "big")
            while left > 0:
                got = conn.recv(min(CHUNK, left))
                if not got:
                    raise ConnectionError("peer closed mid-stream")
                left -= len(got)
            conn.sendall(b"k")


def pingpong(addr: str, port: int, rounds: int) -> None:
    with connect(addr, port) as s:
        s.sendall(b"P")
        for _ in range(10):  # warm-up: ARP, slow start, caches
            s.sendall(b"x")
            recv_exact(s, 1)
        rtts = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            s.sendall(b"x")
            recv_exact(s, 1)
            rtts.append((time.perf_counter_ns() - t0) / 1e3)
    print(f"pingpong rounds {rounds} median_rtt_us {statistics.median(rtts):.1f} min_rtt_us {min(rtts):.1f}")


def stream(addr: str, port: int, n: int) -> None:
    data = memoryview(bytes(CHUNK))
    with connect(addr, port) as s:
        s.sendall(b"S" + n.to_bytes(8, "big"))
        t0 = time.perf_counter()
        left = n
        while left > 0:
            k = min(CHUNK, left)
            s.sendall(data[:k])
            left -= k
        recv_exact(s, 1)
        dt = time.perf_counter() - t0
    print(f"stream bytes {n} seconds {dt:.4f} mbit_per_s {n * 8 / dt / 1e6:.1f}")


def main() -> None:
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "serve":
        serve(addr, port)
    elif mode == "pingpong":
        pingpong(addr, port, int(sys.argv[4]) if len(sys.argv) > 4 else 200)
    elif mode == "stream":
        stream(addr, port, int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
