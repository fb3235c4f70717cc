"""The command-line trainers: ``python -m gar_tf_trainers.<name> --help``, or the
``gar-tf-<name>`` commands that ``pip install gar-tf`` puts on the PATH. Importing this
package (and parsing flags) loads no TensorFlow: ``_cli`` checks every flag first."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def _command(name: str) -> Callable[[], None]:
    """The console-script entry of trainer ``name``: its ``main()`` on ``sys.argv``."""

    def run() -> None:
        importlib.import_module(f"gar_tf_trainers.{name}").main()

    run.__name__ = run.__qualname__ = name
    return run


augment_search = _command("augment_search")
split_mixture = _command("split_mixture")
alignment_demo = _command("alignment_demo")
split_mixture_report = _command("split_mixture_report")
