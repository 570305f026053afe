"""The lifetime of a C handle owned by a Python object (a plugin instance, an engine)."""

from __future__ import annotations

import threading
from typing import Any


class OwnedHandle:
    """Holds ``_handle`` and ``_lock``; :meth:`close` destroys the handle once (also on exit
    from a ``with`` block and on garbage collection).  Subclasses implement :meth:`_destroy`."""

    _handle: Any = None

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _destroy(self, handle: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Idempotent."""
        with self._lock:
            if self._handle is not None:
                self._destroy(self._handle)
                self._handle = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self.close()
