"""The platform core: what every feature folder shares, and the only platform code they import.

- ``config``: one precedence rule for every command's settings (YAML < ``--set`` < flags), the typed build.
- ``tokenizer``, ``bundles``, ``model_args``: which tokenizer a job uses; the shipped default bundle.
- ``media``, ``probe``, ``sandboxing``, ``decode``: reading video and images, in-process or in sandboxed helper
  processes (the batch decoder; the endpoint's request decoder, ``serve/sandbox.py``, speaks the same wire).
- ``sources``: one source abstraction (a registry of kinds) that tokenize, eval and training all read.
- ``shards``: decoding shards of items into clips on Ray Data, progress lines, the stall watchdog.
- ``corpus``, ``reader``: the Parquet token corpus format, written by tokenize and read by the generator.
- ``raytrain``: the ``TorchTrainer`` builder, checkpoints and their integrity, and the one ``WorkerLoop``
  whose step the curriculum and the generator each supply.
- ``log``: the project's loggers and Ray's worker log setup.

Feature folders (``tokenize``, ``train``, ``ar``, ``eval``, ``serve``, ``reconstruct``) import ``core`` and
``sweettok`` only (``tests/test_layout.py``); ``commands`` composes them into the CLI.
"""
