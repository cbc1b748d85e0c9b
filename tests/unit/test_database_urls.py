"""Database URLs: the psycopg 3 driver, masked passwords, the schema named by search_path."""

from __future__ import annotations

import pytest

from api.database import DatabaseUrlError, engine_from_url, masked_url, search_path_schema


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_opens_with_psycopg_3(scheme: str) -> None:
    engine = engine_from_url(f"{scheme}://postgres@127.0.0.1:5432/test")

    assert engine.url.drivername == "postgresql+psycopg"


def test_an_explicit_driver_is_kept() -> None:
    assert engine_from_url("sqlite+pysqlite:///:memory:").url.drivername == "sqlite+pysqlite"


def test_a_password_is_masked_when_the_url_is_printed() -> None:
    shown = masked_url("postgresql://settle:s3cret@db:5432/settle")

    assert "s3cret" not in shown
    assert shown == "postgresql://settle:***@db:5432/settle"


def test_the_schema_is_the_first_entry_of_the_search_path_option() -> None:
    url = "postgresql://postgres@127.0.0.1/test?options=-csearch_path%3Dsettle_a,public"

    assert search_path_schema(url) == "settle_a"


def test_the_search_path_may_be_written_with_a_space_after_dash_c() -> None:
    url = "postgresql://postgres@127.0.0.1/test?options=-c%20search_path%3Dsettle_b"

    assert search_path_schema(url) == "settle_b"


def test_without_a_search_path_or_on_sqlite_there_is_no_schema() -> None:
    assert search_path_schema("postgresql://postgres@127.0.0.1/test") is None
    assert search_path_schema("sqlite:///settle.db?options=-csearch_path%3Dx") is None


def test_a_url_that_does_not_parse_is_a_settle_error() -> None:
    with pytest.raises(DatabaseUrlError, match="not a database URL"):
        engine_from_url("settle.db")


def test_a_missing_driver_is_reported_without_the_password() -> None:
    with pytest.raises(DatabaseUrlError, match=r"cannot open nosuchdb://u:\*\*\*@h/d") as raised:
        engine_from_url("nosuchdb://u:s3cret@h/d")

    assert "s3cret" not in str(raised.value)
