"""Process checks shared by the tests that kill drivers and workers."""

from pathlib import Path


def gone(pid: int) -> bool:
    """True when process ``pid`` no longer exists, or is a zombie (it has exited and waits for
    its new parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
