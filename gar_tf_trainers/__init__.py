"""The command-line trainers: ``python -m gar_tf_trainers.<name> --help``, or the
``gar-tf-<name>`` commands that ``pip install gar-tf`` puts on the PATH (``_commands``).
Importing this package (and parsing flags) loads no TensorFlow: ``_cli`` checks every flag
first."""
