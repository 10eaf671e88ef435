"""The lock file's note: cleared in place, read as its first line."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dq_stores.filesystem._writes import (
    Note,
    clear_intent,
    encode_intent,
    encode_journal,
    read_note,
)

_intents = st.lists(
    st.tuples(st.sampled_from(["contract", "job_run"]), st.text(min_size=1), st.integers(1, 999)),
    min_size=1,
    max_size=40,
).map(tuple)


@given(history=st.lists(st.tuples(_intents, st.booleans()), min_size=1, max_size=6))
def test_the_last_note_written_is_read_whatever_longer_notes_left_behind(
    tmp_path_factory: object, history: list[tuple[tuple[tuple[str, str, int], ...], bool]]
) -> None:
    path = Path(str(tmp_path_factory.mktemp("note"))) / ".lock"  # type: ignore[attr-defined]
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        for intents, journal in history:
            written = os.pwrite(fd, encode_intent(intents), 0)
            assert read_note(fd) == Note(intents)
            if journal:
                os.pwrite(fd, encode_journal(intents), 0)
                assert read_note(fd) == Note(intents, journal=True)
            clear_intent(fd, None if journal else written)
            assert read_note(fd) == Note(())
    finally:
        os.close(fd)


def test_a_torn_note_is_unreadable_and_a_long_one_is_truncated(tmp_path: Path) -> None:
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, encode_intent([("contract", "k", 1)])[:-3], 0)
        assert read_note(fd) is None  # no newline: a write that did not finish
        big = encode_intent([("contract", f"k{i:05d}", 1) for i in range(400)])
        written = os.pwrite(fd, big, 0)
        assert len(read_note(fd).intents) == 400  # type: ignore[union-attr]
        clear_intent(fd, written)
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
