"""The ``harness`` app's Hydra configs, shipped inside the package (Hydra's ``pkg://harness.conf``).

One folder per config group (``model/``, ``data/``, ``launcher/`` ...), ``config.yaml`` choosing the
defaults; every key and its default is in ``harness.config``. A wheel carries these files, so an
installed ``harness`` finds them wherever it runs.
"""
