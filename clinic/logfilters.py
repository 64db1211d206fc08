"""Log filters: every line carries the request id, never a raw control character."""

import logging

from clinic.context import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True
