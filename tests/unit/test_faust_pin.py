"""The worker runs only on the faust-streaming release its overrides were written against."""

from __future__ import annotations

import faust
import pytest

from stream_app.worker.overrides import FAUST_VERSION, UnsupportedFaustVersion, check_faust_version


def test_the_installed_faust_is_the_pinned_one() -> None:
    assert faust.__version__ == FAUST_VERSION
    check_faust_version()


def test_the_worker_refuses_another_faust_version() -> None:
    with pytest.raises(UnsupportedFaustVersion, match=f"faust-streaming=={FAUST_VERSION}"):
        check_faust_version("0.16.0")
