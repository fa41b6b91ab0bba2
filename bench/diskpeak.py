"""Run a command and sample the used space of one filesystem (statvfs) every ~1 ms while it runs.

usage: diskpeak.py MOUNTPOINT CMD [ARG...]   -> prints JSON {"baseline", "peak", "final", "samples", "seconds"}
(bytes used = (f_blocks - f_bfree) * f_frsize; ext4 counts delayed-allocation blocks as used).
"""

import json
import os
import subprocess
import sys
import threading
import time


def used(mnt: str) -> int:
    s = os.statvfs(mnt)
    return (s.f_blocks - s.f_bfree) * s.f_frsize


def main() -> int:
    mnt, cmd = sys.argv[1], sys.argv[2:]
    os.sync()
    base = used(mnt)
    peak, n, stop = [base], [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            u = used(mnt)
            if u > peak[0]:
                peak[0] = u
            n[0] += 1
            time.sleep(0.001)

    th = threading.Thread(target=sample)
    th.start()
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    os.sync()
    final = used(mnt)
    peak[0] = max(peak[0], final)
    print(
        json.dumps(
            {"baseline": base, "peak": peak[0], "final": final, "samples": n[0], "seconds": dt, "rc": rc}
        )
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
