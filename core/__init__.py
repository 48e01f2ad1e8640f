"""The backend. Imported before any of its modules, so before they import SQLAlchemy's asyncio extension: its ORM
half loads only if something asks for it (``core.deferred_orm`` says why)."""

from core.deferred_orm import defer_sqlalchemy_orm

defer_sqlalchemy_orm()
