"""SQL: parse (text -> AST, no schema), check (AST + schema -> plan), execute.

- ``db_core.sql.ast``: the syntax tree (frozen dataclasses), ``SqlError``,
  ``format_position`` and ``to_sql`` (AST -> canonical SQL text).
- ``db_core.sql.parser``: ``parse(text) -> Statement``; a hand-written
  tokenizer and recursive-descent parser for the supported subset only.
"""
