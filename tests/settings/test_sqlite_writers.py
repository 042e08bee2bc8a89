"""The embedded database's write transactions queue on a file lock: the next
writer gets in as soon as the previous one commits, not after a busy-handler
sleep."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from django.db import connections

from nexus_site.sqlite.base import DatabaseWrapper


def _wrapper(path: Path) -> Any:
    settings = {
        "ENGINE": "nexus_site.sqlite",
        "NAME": str(path),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
    configured = connections.configure_settings(
        {"default": settings, "writers": settings}
    )["writers"]
    return DatabaseWrapper(configured, alias="writers")


def _begin(wrapper: Any) -> None:
    wrapper.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def _commit(wrapper: Any) -> None:
    wrapper.commit()
    wrapper.set_autocommit(True)


def test_a_second_writer_waits_for_the_first_and_gets_in_as_it_commits(
    tmp_path, django_db_blocker
):
    with django_db_blocker.unblock():  # a file of its own, not the test database
        path = tmp_path / "nexus.sqlite3"
        first = _wrapper(path)
        with first.cursor() as cursor:
            cursor.execute("CREATE TABLE t (n INTEGER)")
        _begin(first)
        first.cursor().execute("INSERT INTO t VALUES (1)")
        entered: list[float] = []

        def second_writer() -> None:
            second = _wrapper(path)
            _begin(second)
            entered.append(time.monotonic())
            second.cursor().execute("INSERT INTO t VALUES (2)")
            _commit(second)
            second.close()

        thread = threading.Thread(target=second_writer)
        thread.start()
        # SQLite's busy handler would be sleeping (100 ms at a time by now)
        time.sleep(0.34)
        assert entered == []  # still queued behind the first writer
        committed = time.monotonic()
        _commit(first)
        thread.join(5)
        assert entered and entered[0] - committed < 0.04
        assert (path.parent / "nexus.sqlite3.writers").exists()
        with first.cursor() as cursor:
            cursor.execute("SELECT n FROM t ORDER BY n")
            assert [row[0] for row in cursor.fetchall()] == [1, 2]
        first.close()
