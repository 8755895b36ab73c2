"""Errors the simulator answers with, in Salesforce's body shapes."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class SimError(Exception):
    """A REST error: `{"message", "errorCode"}` with an HTTP status."""

    def __init__(self, status: int, message: str, error_code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code

    def response(self) -> Response:
        return JSONResponse(
            {"message": self.message, "errorCode": self.error_code}, status_code=self.status
        )


def bad_request(message: str) -> SimError:
    return SimError(400, message, "BAD_REQUEST")


def not_found(message: str = "The requested resource does not exist.") -> SimError:
    return SimError(404, message, "NOT_FOUND")


def conflict(message: str) -> SimError:
    return SimError(409, message, "CONFLICT")


def spring_error(status: int, error: str, message: str, path: str) -> Response:
    """The event router answers like a Spring Boot service."""
    body = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "status": status,
        "error": error,
        "message": message,
        "path": path,
    }
    return JSONResponse(body, status_code=status)


async def handle_sim_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return exc.response()
