"""Every dead-letter reason, defined once (docs/events.md shows an example record of each)."""

from __future__ import annotations

# The record is not text the codec can read.
BAD_ENCODING = "bad_encoding"          # not UTF-8 (or a lone surrogate escape)
TOO_LARGE = "too_large"                # longer than the record size limit (default 1 MiB)
TOO_DEEP = "too_deep"                  # JSON nested deeper than the depth limit
MALFORMED_JSON = "malformed_json"      # not one JSON document
BAD_NUMBER = "bad_number"              # an integer outside 64 bits or a non-finite number
NOT_AN_OBJECT = "not_an_object"        # JSON, but not an object
# The record is JSON but not an event of the catalogue.
MISSING_FIELD = "missing_field"        # id, type, time, customer (or CloudEvents source) absent
BAD_FIELD = "bad_field"                # a top-level field of the wrong type/value, or unknown
UNKNOWN_TYPE = "unknown_type"          # `type` is not in the event catalogue
BAD_TIME = "bad_time"                  # `time` not RFC 3339 with an offset, or out of range
INVALID_DATA = "invalid_data"          # `data` does not match the type's schema
# The event is valid but the stream cannot take it.
FUTURE_TIME = "future_time"            # event time too far ahead of the stream / wall clock
TOO_LATE = "too_late"                  # older than the late horizon of its customer
# Source mappings (ingest/import) refuse these.
UNKNOWN_CUSTOMER = "unknown_customer"  # an identity (email, phone, external id) not resolved
UNMAPPABLE = "unmappable"              # a vendor payload no mapping rule can turn into events

DEAD_LETTER_REASONS: tuple[str, ...] = (
    BAD_ENCODING, TOO_LARGE, TOO_DEEP, MALFORMED_JSON, BAD_NUMBER, NOT_AN_OBJECT,
    MISSING_FIELD, BAD_FIELD, UNKNOWN_TYPE, BAD_TIME, INVALID_DATA,
    FUTURE_TIME, TOO_LATE, UNKNOWN_CUSTOMER, UNMAPPABLE,
)
