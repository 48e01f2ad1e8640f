"""SQLAlchemy's asyncio extension without its ORM half until something asks for it.

Everything here uses SQLAlchemy Core through the async engine: its engine, connection and result classes
(``sqlalchemy.ext.asyncio.engine`` and ``.result``) need no ORM. But the package's ``__init__`` also imports
``AsyncSession`` and ``async_scoped_session``, and with them ``sqlalchemy.orm``: about 40 ms of every cold start, a
tenth of the like function's (bench/coldstart.py), for classes nothing here uses.

``defer_sqlalchemy_orm`` makes the package's first import bind only the Core names, and run its real ``__init__``
when any other name of it is first read: code that asks for ``AsyncSession`` gets the real class, as it would
without this. Should a SQLAlchemy release move those names, its ``__init__`` simply runs at once. One thing the
``__init__`` also does waits meanwhile: importing greenlet, which SQLAlchemy then does on the first query instead
(a missing greenlet fails there rather than at import).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # imported by every process's first import of core, so no more than it needs
    from collections.abc import Callable, Sequence
    from importlib.abc import Loader
    from types import ModuleType

PACKAGE = "sqlalchemy.ext.asyncio"
# What the package's __init__ binds from its modules that import no ORM.
_WITHOUT_ORM = {
    "engine": (
        "AsyncConnection",
        "AsyncEngine",
        "AsyncTransaction",
        "async_engine_from_config",
        "create_async_engine",
        "create_async_pool_from_url",
    ),
    "result": ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"),
}


def defer_sqlalchemy_orm() -> None:
    """Applies to the package's first import in this process; nothing to do once it is imported."""
    if PACKAGE not in sys.modules and not any(isinstance(f, _PackageFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PackageFinder())


class _PackageFinder:
    """Stays in ``sys.meta_path`` (removing it while another thread's import walks the list would make that walk
    skip the next finder); after the package's first load it finds nothing, so a reload is the package's own."""

    def __init__(self) -> None:
        self.loaded = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PACKAGE or self.loaded:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = cast("Loader", _CoreNamesFirst(spec.loader, self))
        return spec


class _CoreNamesFirst:
    def __init__(self, loader: Loader, finder: _PackageFinder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._finder.loaded = True
        # From here on the module is the package's own, as loaded without this.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        try:
            for submodule_name, names in _WITHOUT_ORM.items():
                submodule = importlib.import_module(f"{PACKAGE}.{submodule_name}")
                for name in names:
                    setattr(module, name, getattr(submodule, name))
        except (ImportError, AttributeError):
            self._loader.exec_module(module)
            return
        vars(module)["__getattr__"] = _rest_on_first_use(module, self._loader)


def _rest_on_first_use(package: ModuleType, loader: Loader) -> Callable[[str], Any]:
    """The package's ``__getattr__`` until its ``__init__`` has run: runs it, once, then answers from it. Another
    thread asking meanwhile waits for it; the ``__init__`` itself asking (the import system looking for a submodule
    among the package's names) is told the name is not there yet, as it would be."""
    lock = threading.RLock()
    running_init = False

    def __getattr__(name: str) -> Any:
        nonlocal running_init
        with lock:
            if running_init:
                raise AttributeError(name)
            if vars(package).get("__getattr__") is __getattr__:
                running_init = True
                try:
                    loader.exec_module(package)
                    if vars(package).get("__getattr__") is __getattr__:  # not one the package defines itself
                        del package.__getattr__
                finally:
                    running_init = False
        try:
            return vars(package)[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    return __getattr__
