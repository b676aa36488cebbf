"""The few custom components the manifests reference by class name (what a declarative manifest cannot say).

Everything else (auth, pagination, date-window slicing, incremental cursors, retries with backoff and jitter,
Retry-After, token refresh) is declared in `connectors/apis/<provider>/manifest.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.cursor_pagination_strategy import (
    CursorPaginationStrategy,
)
from airbyte_cdk.sources.types import Record, StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException


class RepeatedCursorError(AirbyteTracedException):
    """The API handed back the page cursor it was just asked for: following it again would loop forever."""


@dataclass
class RepeatGuardCursorPagination(CursorPaginationStrategy):
    """CursorPagination that fails the stream when the next cursor equals the one just requested.

    A server that ignores `starting_after` (or answers the same `page` again) would otherwise be paged forever.
    """

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Record | None,
        last_page_token_value: Any | None = None,
        page_size_override: int | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> Any | None:
        token = super().next_page_token(
            response, last_page_size, last_record, last_page_token_value, page_size_override, stream_slice
        )
        if token is not None and last_page_token_value is not None and str(token) == str(last_page_token_value):
            message = (
                f"pagination cursor repeated: the page requested with cursor {last_page_token_value!r} "
                f"points to the same cursor again (slice {dict(stream_slice or {})}); stopped instead of looping"
            )
            raise RepeatedCursorError(message=message, internal_message=message, failure_type=FailureType.system_error)
        return token
