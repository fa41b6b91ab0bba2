"""Interleaved wall-clock timer (hyperfine-compatible JSON) for a loaded or noisy machine.

hyperfine runs all repetitions of one command, then the next: a change in background load between commands
then biases the ratios. This runs N rounds; each round runs every command once, in a fresh random order,
each after its own --prepare (untimed, through sh -c). Commands are split on whitespace and spawned
directly (no shell; like hyperfine -N). Output: {"results": [{"command", "times", "user", "system"}]}.

usage: timeit.py --runs N [--warmup K] --out FILE  [--prepare SH] -n NAME CMD  [[--prepare SH] -n NAME CMD ...]
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    runs, warmup, out, cmds, prep = 10, 1, None, [], None
    it = iter(argv)
    for a in it:
        if a == "--runs":
            runs = int(next(it))
        elif a == "--warmup":
            warmup = int(next(it))
        elif a == "--out":
            out = next(it)
        elif a == "--prepare":
            prep = next(it)
        elif a == "-n":
            name = next(it)
            cmds.append(
                {
                    "name": name,
                    "argv": next(it).split(),
                    "prepare": prep,
                    "times": [],
                    "user": [],
                    "system": [],
                }
            )
            prep = None
        else:
            raise SystemExit(f"timeit.py: unknown argument {a!r}")
    devnull = os.open(os.devnull, os.O_RDWR)

    def once(c: dict, record: bool) -> None:
        if c["prepare"]:
            subprocess.run(["sh", "-c", c["prepare"]], check=True, stdout=devnull, stderr=devnull)
        err = tempfile.TemporaryFile()
        t0 = time.perf_counter()
        pid = os.posix_spawnp(
            c["argv"][0],
            c["argv"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )
        _, status, ru = os.wait4(pid, 0)
        dt = time.perf_counter() - t0
        if status != 0:
            err.seek(0)
            raise SystemExit(
                f"timeit.py: {c['name']} failed (exit {os.waitstatus_to_exitcode(status)}): "
                f"{' '.join(c['argv'])}\nits stderr:\n{err.read().decode(errors='replace')}"
            )
        err.close()
        if record:
            c["times"].append(dt)
            c["user"].append(ru.ru_utime)
            c["system"].append(ru.ru_stime)

    for c in cmds:
        for _ in range(warmup):
            once(c, False)
    for _ in range(runs):
        order = list(cmds)
        random.shuffle(order)
        for c in order:
            once(c, True)
    res = {
        "results": [
            {
                "command": c["name"],
                "argv": c["argv"],
                "prepare": c["prepare"],
                "times": c["times"],
                "user": c["user"],
                "system": c["system"],
            }
            for c in cmds
        ]
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
