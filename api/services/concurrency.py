"""Optimistic concurrency with ETag / If-Match (RFC 9110 §13.1.1, RFC 6585 §3)."""

from dataclasses import dataclass

from api.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class IfMatch:
    """The If-Match header of a PATCH, checked against the stored version."""

    header: str | None

    def check(self, version: int) -> None:
        if self.header is None:
            raise PreconditionRequired("Send If-Match with the ETag from your last GET")
        tags = [tag.strip() for tag in self.header.split(",")]
        if "*" not in tags and etag(version) not in tags:
            raise PreconditionFailed(
                f"The record changed since you read it (now {etag(version)}); read it again"
            )
