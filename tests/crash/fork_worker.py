"""A child that forks an execution and SIGKILLs itself at a chosen point of writing the fork.

    python fork_worker.py DATA_DIR ORIGIN AT NEW_ID POINT [cli]

POINT is where the process dies, at the OS boundary (``delite.log._os``): ``write`` (half the fork's bytes
written, the rest never), ``fsync`` (all written, nothing synced), ``link`` (synced, not yet named), ``linked``
(named, the directory not synced) or ``none`` (no kill). With ``cli`` the fork goes through ``delite fork``.
"""

from __future__ import annotations

import os
import signal
import sys

from delite.log import _os as log_os


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_dir, origin, at, new_id, point = sys.argv[1:6]
    via_cli = len(sys.argv) > 6 and sys.argv[6] == "cli"
    real_write, real_fsync, real_link = log_os.write_all, log_os.fsync, log_os.link

    def write_all(fd: int, data: bytes) -> None:
        if point == "write":
            os.write(fd, bytes(data[: len(data) // 2]))  # a large single write cut short
            die()
        real_write(fd, data)

    def fsync(fd: int) -> None:
        if point == "fsync":
            die()
        real_fsync(fd)

    def link(src: str, dst: str) -> None:
        if point == "link":
            die()
        real_link(src, dst)
        if point == "linked":
            die()

    log_os.write_all, log_os.fsync, log_os.link = write_all, fsync, link
    if via_cli:
        from delite_cli.main import cli

        cli.main(["fork", origin, "--data-dir", data_dir, "--at", at, "--id", new_id], standalone_mode=True)
    else:
        from delite import DataDir

        DataDir(data_dir).fork(origin, at=int(at), new_id=new_id)


if __name__ == "__main__":
    main()
