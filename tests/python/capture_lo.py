"""Records the TCP payloads crossing the loopback interface, for EncryptionSuite: what an eavesdropper on the host sees.

    capture_lo.py OUT STOP_FILE MAX_SECONDS

A raw AF_PACKET socket on `lo` (root, or CAP_NET_RAW) takes every outgoing packet (each is seen once more as incoming;
those are skipped) until STOP_FILE exists or MAX_SECONDS pass, and at most 1 GiB of payload. Each TCP flow's payloads
are joined in the order sent, so that a pattern cut across segments is found whole; OUT gets the flows one after the
other, 64 zero bytes apart. Prints "READY" once capturing, and "CAPTURED <bytes> <flows>" at the end.
"""

import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
LIMIT = 1 << 30


def main():
    out, stop_file, max_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("lo", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    print("READY", flush=True)
    flows, total = {}, 0
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and total < LIMIT and not os.path.exists(stop_file):
        if not select.select([s], [], [], 0.2)[0]:
            continue
        frame, address = s.recvfrom(1 << 17)
        if address[2] != PACKET_OUTGOING or len(frame) < 14 + 20:
            continue
        if struct.unpack("!H", frame[12:14])[0] != 0x0800:  # IPv4 only: the tests are on 127.0.0.1
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 6:  # TCP
            continue
        length = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[header:length]
        src, dst = struct.unpack("!HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            flows.setdefault((src, dst), bytearray()).extend(payload)
            total += len(payload)
    with open(out, "wb") as f:
        f.write((b"\0" * 64).join(bytes(b) for b in flows.values()))
    print(f"CAPTURED {total} {len(flows)}", flush=True)


if __name__ == "__main__":
    main()
