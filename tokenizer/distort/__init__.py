"""Seeded acoustic distortions of 16 kHz mono speech (R-Spin's noisy views and the probe's
robustness table): additive noise at an SNR (``noise``, ``music``), reverberation by generated
rooms (``rooms``), a telephone line and low-bitrate codecs (``channel``), LPC vocoding
(``vocoding``); ``conditions`` names them and applies one. Every distortion keeps the audio's
length and alignment."""
