"""A database URL's password never reaches a message (page, CLI, log): libpq quotes the piece of a connection
string it cannot parse, and an unsupported URL used to be echoed whole."""

from __future__ import annotations

import traceback

import pytest

from core.errors import ConsoleError, StoreError
from core.store import open_store
from core.store.postgres import _Pool, scrub_secret

PASSWORD = "s3cret pw"


@pytest.mark.parametrize("dsn", [f"postgresql://u:{PASSWORD}@127.0.0.1/db", f"host=127.0.0.1 password={PASSWORD}"])
def test_an_unparsable_database_url_is_a_store_error_without_its_password(dsn):
    with pytest.raises(StoreError) as caught:
        _Pool(dsn, 1)._connect()
    shown = "".join(traceback.format_exception(caught.value))  # what a log or a terminal would print
    assert "not a valid connection string" in str(caught.value)
    assert "s3cret" not in shown


def test_an_unsupported_store_url_is_shown_without_its_password():
    with pytest.raises(ConsoleError) as caught:
        open_store("mysql://admin:hunter2-xyz@db.example.com/console")
    assert "hunter2" not in str(caught.value)
    assert "mysql://admin:***@db.example.com/console" in str(caught.value)


def test_scrub_secret_removes_url_and_keyword_passwords():
    assert scrub_secret('failed for "p%40ss" and p@ss', "postgresql://u:p%40ss@h/db") == 'failed for "***" and ***'
    assert scrub_secret("bad 'x y'", "host=h password='x y'") == "bad '***'"
