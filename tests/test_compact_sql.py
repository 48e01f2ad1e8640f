"""core.db.compact_sql shortens statements by their whitespace only where that cannot change what they mean."""

from __future__ import annotations

import pytest

from core.db import compact_sql


def test_whitespace_runs_become_one_space_and_none_stays_inside_parentheses_or_around_commas() -> None:
    sql = """
        WITH photo AS (
            SELECT p.id,   e.slug FROM photos p
            WHERE p.id = :photo_id AND e.slug = 'a-b' AND e.title <> 'it''s'
        )
        SELECT * FROM photo
    """
    assert compact_sql(sql) == (
        "WITH photo AS (SELECT p.id,e.slug FROM photos p"
        " WHERE p.id = :photo_id AND e.slug = 'a-b' AND e.title <> 'it''s') SELECT * FROM photo"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 -- a comment\nFROM t",
        "SELECT 1 /* a comment */ FROM t",
        "SELECT '( a  b )' FROM t",
        "SELECT 'x\ny' FROM t",
        'SELECT 1 AS "two  words" FROM t',
        "SELECT $$a  b$$",
    ],
)
def test_sql_whose_meaning_compacting_would_change_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="compacting would change"):
        compact_sql(sql)
