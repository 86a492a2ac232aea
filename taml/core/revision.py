"""Which source revision produced an artifact."""

import subprocess
from pathlib import Path

from taml import __version__

#: git answers in milliseconds; a hung call (a locked index on a network disk) must not stall a step.
GIT_TIMEOUT_S = 5


def _git(root: Path, *args: str, check: bool) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=check
    ).stdout.strip()


def code_revision() -> str:
    """The git commit of this checkout (``+dirty`` when modified), or the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = _git(root, "rev-parse", "--short=12", "HEAD", check=True)
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", check=False)
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"taml-{__version__}"
