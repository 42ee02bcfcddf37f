#!/usr/bin/env python3
"""A simulated WAN link between two network namespaces, for benchmarks that need a real round
trip (this VM's kernel has no netem qdisc).

Creates the namespaces `waas-cli` (10.77.0.1) and `waas-srv` (10.77.0.2), joined by two TUN
devices whose packets this process carries across, each after `--rtt-ms / 2`: every packet,
TCP handshakes included, so a new connection pays its round trip as over a real network. No
packet is parsed or changed; order is kept (the delay is constant). Runs until interrupted,
then deletes both namespaces. Needs root.

    sudo loadtest/wan-link.py --rtt-ms 10 &
    ip netns exec waas-cli ping -c1 10.77.0.2      # ~10 ms
"""
import argparse, fcntl, heapq, os, select, signal, struct, subprocess, sys, time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SIDES = (("waas-cli", "tunc", "10.77.0.1", "10.77.0.2"), ("waas-srv", "tuns", "10.77.0.2", "10.77.0.1"))


def sh(*args):
    subprocess.run(args, check=True)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def teardown():
    for ns, *_ in SIDES:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtt-ms", type=float, default=10.0)
    p.add_argument("--mtu", type=int, default=9000)
    args = p.parse_args()
    one_way = args.rtt_ms / 2000.0
    teardown()
    fds = []
    for ns, dev, local, peer in SIDES:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        fd = open_tun(dev)
        fds.append(fd)
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "-n", ns, "link", "set", dev, "mtu", str(args.mtu), "up")
        sh("ip", "-n", ns, "addr", "add", local, "peer", peer, "dev", dev)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    other = {fds[0]: fds[1], fds[1]: fds[0]}
    due = []  # (time, seq, out_fd, packet)
    seq = 0
    print(f"wan-link up: waas-cli 10.77.0.1 <-> waas-srv 10.77.0.2, rtt {args.rtt_ms} ms", flush=True)
    try:
        while True:
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
            ready, _, _ = select.select(fds, [], [], timeout)
            now = time.monotonic()
            for fd in ready:
                while True:
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    heapq.heappush(due, (now + one_way, seq, other[fd], pkt))
                    seq += 1
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, fd, pkt = heapq.heappop(due)
                try:
                    os.write(fd, pkt)
                except BlockingIOError:
                    pass  # a full TUN queue drops, as a congested link would
    except KeyboardInterrupt:
        pass
    finally:
        teardown()


if __name__ == "__main__":
    main()
