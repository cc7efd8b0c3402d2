"""The ``speechtok`` command (top floor): one parser, a thin function per subcommand over the
packages below it (``tokenizer`` core, ``vocoder``, ``lm_probe``, ``serving``, ``bench``)."""
