"""The snapshot keeper answers the importing process with one line."""

from __future__ import annotations

from credo.services.preview_snapshot import one_line


def test_an_error_of_many_lines_is_answered_as_its_first_line() -> None:
    error = RuntimeError(
        "Out of Memory Error: failed to allocate data of size 16.0 MiB\n\n"
        "Possible solutions:\n* Reducing the number of threads"
    )
    assert (
        one_line(error)
        == "RuntimeError: Out of Memory Error: failed to allocate data of size 16.0 MiB"
    )


def test_an_error_without_a_message_is_answered_by_its_kind() -> None:
    assert one_line(MemoryError()) == "MemoryError"
