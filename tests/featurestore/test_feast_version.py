"""The Feast release the format mirrors: the lock file's pin, the installed one, and the guard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from featurestore import FEAST_VERSION, FeastVersionError, check_feast
from featurestore.feast_version import installed_feast

ROOT = Path(__file__).resolve().parents[2]


def test_the_format_is_checked_against_the_locked_and_installed_feast():
    pins = re.findall(r"^feast==(\S+)$", (ROOT / "requirements.lock").read_text(), flags=re.M)
    assert pins == [FEAST_VERSION]
    assert installed_feast() == FEAST_VERSION


def test_another_feast_series_is_refused_naming_both_releases():
    check_feast("0.67.4")  # a patch release of the checked series
    for other in ("0.68.0", "0.6.7", "1.67.0"):
        with pytest.raises(FeastVersionError, match=rf"installed feast {re.escape(other)} .*\(0\.67\.0\)"):
            check_feast(other)
