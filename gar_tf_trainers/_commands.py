"""The console-script entries ``gar-tf-<name>`` (setup.py): each runs trainer ``name``'s
``main()`` on ``sys.argv`` and returns None (a returned record would be an exit status).
Kept out of the package namespace, where they would shadow the trainer modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def _command(name: str) -> Callable[[], None]:
    def run() -> None:
        importlib.import_module(f"gar_tf_trainers.{name}").main()

    run.__name__ = run.__qualname__ = name
    return run


augment_search = _command("augment_search")
split_mixture = _command("split_mixture")
alignment_demo = _command("alignment_demo")
split_mixture_report = _command("split_mixture_report")
