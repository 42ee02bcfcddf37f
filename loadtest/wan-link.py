#!/usr/bin/env python3
"""A simulated WAN link between two network namespaces, for benchmarks that need a real round
trip (this VM's kernel has no netem qdisc).

Creates the namespaces `waas-cli` (10.77.0.1) and `waas-srv` (10.77.0.2), joined by two TUN
devices whose packets this process carries across, each after `--rtt-ms / 2`: every packet,
TCP handshakes included, so a new connection pays its round trip as over a real network. No
packet is parsed or changed; order is kept (the delay is constant). Runs until interrupted,
then deletes the namespaces it made. Needs root.

    sudo loadtest/wan-link.py --rtt-ms 10 &
    ip netns exec waas-cli ping -c1 10.77.0.2      # ~10 ms

The names, addresses and TUN devices are options, so that several links can run at once (the
regions test, `waas/tests/regions.rs`, joins the current namespace, `--ns-a -`, to a region's
namespace). With `--existing` both namespaces were made before (by other links: the
three-region test, `waas/tests/regions3.rs`, joins two regions' namespaces that way): only the
devices are added, and only they are deleted on the way out. SIGUSR1 cuts the link (every
packet dropped, both ways) and SIGUSR2 heals it.
"""
import argparse, fcntl, heapq, os, select, signal, struct, subprocess, sys, time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SIDES = []  # (namespace or None for the current one, tun device, local address, peer address)
EXISTING = [False]  # the namespaces exist already: make and delete only the devices


def sh(*args):
    subprocess.run(args, check=True)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def teardown():
    for ns, dev, *_ in SIDES:
        if ns is None or EXISTING[0]:
            subprocess.run(["ip", *(["-n", ns] if ns else []), "link", "del", dev], stderr=subprocess.DEVNULL)
        else:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def ip(ns, *args):
    sh("ip", *(["-n", ns] if ns else []), *args)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtt-ms", type=float, default=10.0)
    p.add_argument("--mtu", type=int, default=9000)
    p.add_argument("--ns-a", default="waas-cli", help="namespace of side A; - for the current one")
    p.add_argument("--ns-b", default="waas-srv", help="namespace of side B (made and deleted here, unless --existing)")
    p.add_argument("--existing", action="store_true", help="the namespaces exist: neither make nor delete them")
    p.add_argument("--addr-a", default="10.77.0.1")
    p.add_argument("--addr-b", default="10.77.0.2")
    p.add_argument("--dev-a", default="tunc")
    p.add_argument("--dev-b", default="tuns")
    args = p.parse_args()
    one_way = args.rtt_ms / 2000.0
    ns_a = None if args.ns_a == "-" else args.ns_a
    SIDES.extend([(ns_a, args.dev_a, args.addr_a, args.addr_b), (args.ns_b, args.dev_b, args.addr_b, args.addr_a)])
    EXISTING[0] = args.existing
    teardown()
    fds = []
    for ns, dev, local, peer in SIDES:
        if ns is not None and not args.existing:
            sh("ip", "netns", "add", ns)
            ip(ns, "link", "set", "lo", "up")
        fd = open_tun(dev)
        fds.append(fd)
        if ns is not None:
            sh("ip", "link", "set", dev, "netns", ns)
        ip(ns, "link", "set", dev, "mtu", str(args.mtu), "up")
        ip(ns, "addr", "add", local, "peer", peer, "dev", dev)
    cut = [False]
    signal.signal(signal.SIGUSR1, lambda *_: cut.__setitem__(0, True))
    signal.signal(signal.SIGUSR2, lambda *_: cut.__setitem__(0, False))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    other = {fds[0]: fds[1], fds[1]: fds[0]}
    due = []  # (time, seq, out_fd, packet)
    seq = 0
    print(
        f"wan-link up: {args.ns_a} {args.addr_a} <-> {args.ns_b} {args.addr_b}, rtt {args.rtt_ms} ms",
        flush=True,
    )
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
                    if cut[0]:
                        continue  # a cut link loses every packet
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
