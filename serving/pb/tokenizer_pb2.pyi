from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    PCM_S16LE: _ClassVar[Encoding]
    PCM_F32LE: _ClassVar[Encoding]
ENCODING_UNSPECIFIED: Encoding
PCM_S16LE: Encoding
PCM_F32LE: Encoding

class Pcm(_message.Message):
    __slots__ = ("data", "sample_rate", "encoding", "channels")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sample_rate: int
    encoding: Encoding
    channels: int
    def __init__(self, data: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., channels: _Optional[int] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("file", "pcm")
    FILE_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    file: bytes
    pcm: Pcm
    def __init__(self, file: _Optional[bytes] = ..., pcm: _Optional[_Union[Pcm, _Mapping]] = ...) -> None: ...

class TokenizeOptions(_message.Message):
    __slots__ = ("model", "dedup", "full_utterance")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    FULL_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    dedup: bool
    full_utterance: bool
    def __init__(self, model: _Optional[str] = ..., dedup: _Optional[bool] = ..., full_utterance: _Optional[bool] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("audio", "options")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    options: TokenizeOptions
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., options: _Optional[_Union[TokenizeOptions, _Mapping]] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("units", "durations", "frame_rate", "model", "fingerprint", "audio_seconds")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    DURATIONS_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedScalarFieldContainer[int]
    durations: _containers.RepeatedScalarFieldContainer[int]
    frame_rate: float
    model: str
    fingerprint: str
    audio_seconds: float
    def __init__(self, units: _Optional[_Iterable[int]] = ..., durations: _Optional[_Iterable[int]] = ..., frame_rate: _Optional[float] = ..., model: _Optional[str] = ..., fingerprint: _Optional[str] = ..., audio_seconds: _Optional[float] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("model", "sample_rate", "encoding", "channels", "resume_frame", "audio_offset")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FRAME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_FIELD_NUMBER: _ClassVar[int]
    model: str
    sample_rate: int
    encoding: Encoding
    channels: int
    resume_frame: int
    audio_offset: int
    def __init__(self, model: _Optional[str] = ..., sample_rate: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., channels: _Optional[int] = ..., resume_frame: _Optional[int] = ..., audio_offset: _Optional[int] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("units", "offset", "final", "model", "fingerprint", "resume_sample")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RESUME_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedScalarFieldContainer[int]
    offset: int
    final: bool
    model: str
    fingerprint: str
    resume_sample: int
    def __init__(self, units: _Optional[_Iterable[int]] = ..., offset: _Optional[int] = ..., final: _Optional[bool] = ..., model: _Optional[str] = ..., fingerprint: _Optional[str] = ..., resume_sample: _Optional[int] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("left_ms", "chunk_ms", "right_ms")
    LEFT_MS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    RIGHT_MS_FIELD_NUMBER: _ClassVar[int]
    left_ms: int
    chunk_ms: int
    right_ms: int
    def __init__(self, left_ms: _Optional[int] = ..., chunk_ms: _Optional[int] = ..., right_ms: _Optional[int] = ...) -> None: ...

class Steps(_message.Message):
    __slots__ = ("step_ms", "lookahead_ms", "latency_ms")
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    step_ms: int
    lookahead_ms: int
    latency_ms: int
    def __init__(self, step_ms: _Optional[int] = ..., lookahead_ms: _Optional[int] = ..., latency_ms: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "k", "k2", "frame_rate", "window", "fingerprint", "default", "steps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K2_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    k: int
    k2: int
    frame_rate: float
    window: Window
    fingerprint: str
    default: bool
    steps: Steps
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., k: _Optional[int] = ..., k2: _Optional[int] = ..., frame_rate: _Optional[float] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., fingerprint: _Optional[str] = ..., default: _Optional[bool] = ..., steps: _Optional[_Union[Steps, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("units", "model", "durations", "deduplicated", "speaker")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DURATIONS_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedScalarFieldContainer[int]
    model: str
    durations: _containers.RepeatedScalarFieldContainer[int]
    deduplicated: bool
    speaker: str
    def __init__(self, units: _Optional[_Iterable[int]] = ..., model: _Optional[str] = ..., durations: _Optional[_Iterable[int]] = ..., deduplicated: _Optional[bool] = ..., speaker: _Optional[str] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio", "model", "fingerprint", "audio_seconds")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    audio: Pcm
    model: str
    fingerprint: str
    audio_seconds: float
    def __init__(self, audio: _Optional[_Union[Pcm, _Mapping]] = ..., model: _Optional[str] = ..., fingerprint: _Optional[str] = ..., audio_seconds: _Optional[float] = ...) -> None: ...
