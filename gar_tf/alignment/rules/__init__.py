"""Built-in alignment rules, one module per layer family; importing registers them."""

from gar_tf.alignment.rules import conv, dense, embedding  # noqa: F401
