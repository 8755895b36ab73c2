"""An incremental Server-Sent Events frame parser (the WHATWG event-stream format).

Hand-written rather than a dependency because it is small and the stream reader needs byte-level
control: its watchdog counts any byte as life, including half a line.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SseFrame:
    """One dispatched block. `id` is None when the block had no `id:` line."""

    event: str
    data: str | None
    id: str | None = None


class SseParser:
    """Feed bytes, get frames. Lines end in CRLF, LF or CR; a blank line dispatches a block."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False  # the previous chunk ended in CR; a leading LF belongs to it
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._seen_field = False

    def feed(self, chunk: bytes) -> list[SseFrame]:
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            text = text.removeprefix("\n")
            self._skip_lf = False
        self._buffer += text
        frames: list[SseFrame] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return frames
            end, width = cut
            # A CR ending the buffer is a line end now; an LF opening the next chunk belongs to it.
            self._skip_lf = self._buffer[end] == "\r" and end + 1 == len(self._buffer)
            line, self._buffer = self._buffer[:end], self._buffer[end + width :]
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)

    def _line(self, line: str) -> SseFrame | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" in value:
                return None
            self._id = value
        else:
            return None  # `retry:` and unknown fields are ignored
        self._seen_field = True
        return None

    def _dispatch(self) -> SseFrame | None:
        if not self._seen_field:
            return None
        frame = SseFrame(
            event=self._event or "message",
            data="\n".join(self._data) if self._data else None,
            id=self._id,
        )
        self._reset()
        return frame


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Index and width of the first line terminator (CRLF, LF or CR), or None."""
    lf = buffer.find("\n")
    cr = buffer.find("\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return (lf, 1) if lf != -1 else None
    return cr, 2 if buffer[cr + 1 : cr + 2] == "\n" else 1
