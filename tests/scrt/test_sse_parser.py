"""The event-stream frame parser follows the WHATWG rules, however the bytes are chunked."""

from __future__ import annotations

import pytest

from app.scrt.sse import SseFrame, SseParser


def parse(*chunks: bytes) -> list[SseFrame]:
    parser = SseParser()
    return [frame for chunk in chunks for frame in parser.feed(chunk)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    frames = parse(b'id: 7\nevent: CONVERSATION_MESSAGE\ndata: {"a":\ndata: 1}\n\n')

    assert frames == [SseFrame(event="CONVERSATION_MESSAGE", data='{"a":\n1}', id="7")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    frames = parse(b": keep-alive\nretry: 100\nfoo: bar\ndata: x\n: mid-block comment\n\n")

    assert frames == [SseFrame(event="message", data="x", id=None)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_is_accepted(newline: bytes) -> None:
    stream = newline.join([b"id: 1", b"event: ping", b"data: 0", b"", b"data: two", b"", b""])

    assert parse(stream) == [
        SseFrame(event="ping", data="0", id="1"),
        SseFrame(event="message", data="two", id=None),
    ]


def test_frames_split_anywhere_even_inside_utf8_and_crlf() -> None:
    stream = '\ufeffid: 9\r\ndata: {"text":"héllo ✓"}\r\n\r\n'.encode()

    frames = parse(*(stream[i : i + 1] for i in range(len(stream))))

    assert frames == [SseFrame(event="message", data='{"text":"héllo ✓"}', id="9")]


def test_a_block_is_dispatched_only_at_a_blank_line() -> None:
    parser = SseParser()

    assert parser.feed(b"data: partial\n") == []
    assert parser.feed(b"\n") == [SseFrame(event="message", data="partial", id=None)]


def test_a_frame_with_only_an_id_is_reported_without_data() -> None:
    assert parse(b"id: 42\n\n") == [SseFrame(event="message", data=None, id="42")]


def test_field_without_colon_and_value_without_space() -> None:
    assert parse(b"data\nevent:X\nid:5\n\n") == [SseFrame(event="X", data="", id="5")]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert parse(b"\n\n\n") == []
