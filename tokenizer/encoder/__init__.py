"""HuBERT-style encoder (torchaudio components): config, model, and checkpoint importers.

``config`` -> ``model`` (``Encoder(config)``) -> interop (``import_hf``, ``import_fairseq``), with
the shared key-table machinery in ``keys``. ``config`` is torch-free (model directories read it
on the serving path); ``model`` and the importers need torch + torchaudio (the ``train`` extra).
Importing this package loads none of them.
"""
