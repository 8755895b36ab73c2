"""Event-stream bytes that are legal but unusual: a byte-order mark, broken UTF-8, a CRLF cut
between chunks with no line end after it, and an `id` holding NUL."""

from __future__ import annotations

from app.scrt.sse import SseFrame, SseParser


def parse(*chunks: bytes) -> list[SseFrame]:
    parser = SseParser()
    frames: list[SseFrame] = []
    for chunk in chunks:
        frames.extend(parser.feed(chunk))
    return frames


def test_a_byte_order_mark_opening_the_stream_is_skipped() -> None:
    assert parse("\ufeffdata: first\n\n".encode()) == [SseFrame(event="message", data="first")]


def test_a_byte_order_mark_later_in_the_stream_is_data() -> None:
    frames = parse(b"data: a", "\ufeffb\n\n".encode())

    assert frames == [SseFrame(event="message", data="a\ufeffb")]


def test_broken_utf8_is_replaced_not_fatal() -> None:
    frames = parse(b"data: caf\xc3\n\ndata: ok\n\n")

    assert frames == [
        SseFrame(event="message", data="caf\ufffd"),
        SseFrame(event="message", data="ok"),
    ]


def test_a_crlf_cut_between_chunks_is_one_line_end() -> None:
    frames = parse(b"data: a\r", b"\ndata: b\r\n\r\n")

    assert frames == [SseFrame(event="message", data="a\nb")]


def test_a_crlf_cut_is_undone_once_even_when_no_line_end_follows() -> None:
    frames = parse(b"data: a\r", b"\ndata: b", b"\n\n")

    assert frames == [SseFrame(event="message", data="a\nb")]


def test_an_id_holding_nul_is_ignored() -> None:
    frames = parse(b"id: 7\ndata: a\n\nid: 8\x00x\ndata: b\n\n")

    assert [frame.id for frame in frames] == ["7", None]
