"""The PayLab-Simulate grammar."""

import pytest

from config.errors import InvalidRequestError
from payments.directives import Directives, for_request, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("decline=insufficient_funds", Directives(decline="insufficient_funds")),
        ("latency=1500ms", Directives(latency_ms=1500)),
        ("latency=1.5s", Directives(latency_ms=1500)),
        ("processor_error=timeout", Directives(processor_error="timeout")),
        ("http=503", Directives(http=503)),
        ("decline=lost_card; at=capture", Directives(decline="lost_card", at="capture")),
        ("processor=ironbank, latency=20ms", Directives(processor="ironbank", latency_ms=20)),
    ],
)
def test_each_directive_parses(text, expected):
    parsed = parse(text)
    assert parsed is not None
    assert {**parsed.__dict__, "source": ""} == {**expected.__dict__, "source": ""}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("decline", "name=value"),
        ("decline=nope", "decline must be one of"),
        ("latency=fast", "latency must look like"),
        ("latency=31s", "at most"),
        ("processor_error=boom", "processor_error must be one of"),
        ("http=200", "http must be a status"),
        ("at=later", "at must be one of"),
        ("colour=blue", "unknown directive 'colour'"),
        ("decline=lost_card; decline=stolen_card", "given twice"),
        ("decline=lost_card; processor_error=timeout", "cannot be combined"),
    ],
)
def test_malformed_text_is_a_400_naming_the_directive(text, fragment):
    with pytest.raises(InvalidRequestError) as raised:
        parse(text)
    assert raised.value.status == 400
    assert raised.value.param == "PayLab-Simulate"
    assert fragment in raised.value.message


def test_the_header_wins_over_metadata_and_at_selects_the_operation():
    metadata = {"paylab_simulate": "decline=lost_card; at=capture"}
    assert for_request(None, metadata, "confirm") is None
    from_metadata = for_request(None, metadata, "capture")
    assert from_metadata is not None and from_metadata.decline == "lost_card"
    from_header = for_request("decline=stolen_card", metadata, "confirm")
    assert from_header is not None and from_header.decline == "stolen_card"


def test_malformed_metadata_names_the_metadata_key():
    with pytest.raises(InvalidRequestError) as raised:
        for_request(None, {"paylab_simulate": "latency=soon"}, "confirm")
    assert raised.value.param == "metadata[paylab_simulate]"


def test_empty_text_means_no_directives():
    assert parse("") is None
    assert parse(None) is None
