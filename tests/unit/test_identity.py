"""Identity normalisation, mapping files and the resolver (no raw identity leaks)."""

from __future__ import annotations

import pytest

from valeur_monitor.errors import IdentityError
from valeur_monitor.identity.book import memory_book, parse_identities
from valeur_monitor.identity.resolve import Resolver, identity_hash, normalise

pytestmark = pytest.mark.unit


def test_normalise() -> None:
    assert normalise("email", " Jeanne.Martin@Example.FR ") == "email:jeanne.martin@example.fr"
    assert normalise("phone", "06 12 34 56 78", region="FR") == "phone:+33612345678"
    assert normalise("phone", "+33 (0)6 12 34 56 78") == "phone:+33612345678"
    assert normalise("external", 42, namespace="zendesk") == "ext:zendesk:42"
    for kind, value in (("email", "nobody"), ("phone", "12"), ("phone", "06 12"), ("email", "")):
        with pytest.raises(ValueError) as caught:
            normalise(kind, value, region="FR")
        assert value not in str(caught.value) or not value


def test_mapping_file_problems_have_lines_and_no_identity() -> None:
    text = ("kind,value,customer,account\n"
            "email,a@example.com,c1,\n"
            "email,not-an-email,c2,\n"
            "phone,+33 6 12 34 56 78,,\n"
            "zendesk,12,c3,acct,extra\n")
    with pytest.raises(IdentityError) as caught:
        parse_identities(text, "ids.csv")
    assert caught.value.problems == [
        "ids.csv:3: not an email address",
        "ids.csv:4: empty customer id",
        "ids.csv:5: expected 3 or 4 columns, got 5",
    ]


def test_bad_header() -> None:
    with pytest.raises(IdentityError, match=r"ids\.csv:1: the header must be"):
        parse_identities("email,customer\n", "ids.csv")


def test_resolver_book_then_policy() -> None:
    rows = parse_identities("kind,value,customer,account\nphone,+33612345678,c1,a1\n", "f")
    resolver = Resolver(memory_book(rows), b"key")
    hit = resolver.resolve("phone", "06 12 34 56 78", region="FR")
    assert (hit.customer, hit.account, hit.how) == ("c1", "a1", "book")
    miss = resolver.resolve("phone", "06 00 00 00 01", region="FR")
    assert miss.customer is None and "0600000001" not in miss.detail
    derived = resolver.resolve("phone", "06 00 00 00 01", region="FR", policy="derive")
    assert derived.how == "derived" and derived.customer and "600000001" not in derived.customer
    assert rows[0].hash == identity_hash("phone:+33612345678")
