"""The monorepo example's app: greets its arguments, shows it runs inside its image."""

from __future__ import annotations

import os
import sys

from examples.monorepo.lib.greeting import greet


def main() -> int:
    names = sys.argv[1:] or ["nobody"]
    print(greet(os.environ.get("GREETING", "Hi"), names))
    try:
        with open("/etc/monorepo/motd") as f:
            print("motd:", f.read().strip())
    except OSError as e:
        print("motd: missing:", e)
    print(f"python: {sys.version_info.major}.{sys.version_info.minor} pid: {os.getpid()} cwd: {os.getcwd()}")
    return 0 if names != ["fail"] else 3


if __name__ == "__main__":
    sys.exit(main())
