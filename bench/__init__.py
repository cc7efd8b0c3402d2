"""Reproducible benchmarks (``speechtok bench ...``, run by the scripts beside them): each
measures paths side by side in one run and prints ratios. Top floor: imported by the command,
never by the core, the service, the probe or the vocoder."""
