from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA: _ClassVar[Kind]
    ERROR: _ClassVar[Kind]
    ABORT: _ClassVar[Kind]
    DONE: _ClassVar[Kind]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OK: _ClassVar[Status]
    DUPLICATE: _ClassVar[Status]
    BUSY: _ClassVar[Status]
    REFUSED: _ClassVar[Status]
DATA: Kind
ERROR: Kind
ABORT: Kind
DONE: Kind
OK: Status
DUPLICATE: Status
BUSY: Status
REFUSED: Status

class Header(_message.Message):
    __slots__ = ("version", "job", "src", "dst", "key", "kind", "producer", "pickle_size", "buffer_sizes", "seq")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    PICKLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    BUFFER_SIZES_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    version: int
    job: str
    src: str
    dst: str
    key: str
    kind: Kind
    producer: str
    pickle_size: int
    buffer_sizes: _containers.RepeatedScalarFieldContainer[int]
    seq: int
    def __init__(self, version: _Optional[int] = ..., job: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., key: _Optional[str] = ..., kind: _Optional[_Union[Kind, str]] = ..., producer: _Optional[str] = ..., pickle_size: _Optional[int] = ..., buffer_sizes: _Optional[_Iterable[int]] = ..., seq: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: Header
    chunk: bytes
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class Small(_message.Message):
    __slots__ = ("header", "payload", "id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    header: Header
    payload: bytes
    id: int
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., payload: _Optional[bytes] = ..., id: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("status", "detail", "id", "code", "reason", "more_ids")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MORE_IDS_FIELD_NUMBER: _ClassVar[int]
    status: Status
    detail: str
    id: int
    code: int
    reason: str
    more_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, status: _Optional[_Union[Status, str]] = ..., detail: _Optional[str] = ..., id: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., more_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("job", "src")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    job: str
    src: str
    def __init__(self, job: _Optional[str] = ..., src: _Optional[str] = ...) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("job", "party")
    JOB_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    job: str
    party: str
    def __init__(self, job: _Optional[str] = ..., party: _Optional[str] = ...) -> None: ...
