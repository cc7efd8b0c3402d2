"""HuBERT-style encoder (torchaudio components): config, model, and checkpoint importers.

``config`` -> ``model`` (``Encoder(config)``) -> interop (``import_hf``, ``import_fairseq``), with
the shared key-table machinery in ``keys``. Needs torch + torchaudio (the ``train`` extra).
"""

from tokenizer.encoder.config import EncoderConfig, EncoderConfigError, base, tiny
from tokenizer.encoder.keys import CheckpointKeyError
from tokenizer.encoder.model import Encoder

__all__ = ["CheckpointKeyError", "Encoder", "EncoderConfig", "EncoderConfigError", "base", "tiny"]
