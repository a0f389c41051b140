"""One NAS-Bench-101 record (SPEC §2): the JSON payload and its base64 `ModelMetrics` protobuf.

Payload: UTF-8 JSON `[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]`.
`ModelMetrics` / `EvaluationData` are proto2 messages whose definition is built here in code
(no protoc, no generated module) in a private descriptor pool.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from benchmarks.errors import DataFileError
from benchmarks.nasbench101.model_spec import INPUT, MAX_EDGES, MAX_VERTICES, OP_LABELS, OUTPUT

SYNTHETIC_PREFIX = "synthetic://"
"""`checkpoint_path` prefix that marks a made-up record (see `benchmarks.nasbench101.synthetic`)."""

EVALUATION_FIELDS = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
_HEX = frozenset("0123456789abcdef")
_JSON = json.JSONDecoder()


def _message_classes() -> tuple[type[message.Message], type[message.Message]]:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="nasbench/model_metrics.proto", package="nasbench", syntax="proto2")
    evaluation = proto.message_type.add(name="EvaluationData")
    for number, name in enumerate(EVALUATION_FIELDS, start=1):
        evaluation.field.add(name=name, number=number, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    evaluation.field.add(name="checkpoint_path", number=6, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(
        name="evaluation_data",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".nasbench.EvaluationData",
    )
    metrics.field.add(name="trainable_parameters", number=2, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.EvaluationData")),
    )


ModelMetrics, EvaluationData = _message_classes()
"""Message classes: `ModelMetrics(evaluation_data=[EvaluationData(...) x 3], trainable_parameters=, total_time=)`;
evaluation_data[0] = at initialisation, [1] = halfway, [2] = end of training."""


def decode_payload(payload: bytes) -> tuple[str, int, str, str, message.Message]:
    """(module_hash, epochs, raw_adjacency, raw_operations, ModelMetrics) of one record payload.

    Only the fields' types are checked here; `check_cell` checks the cell. Raises `DataFileError`
    saying what is wrong (the caller adds the file and the byte offset).
    """
    try:
        module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = _JSON.decode(payload.decode("utf-8"))
    except (TypeError, ValueError) as err:
        raise DataFileError(f"not a JSON array of 5 fields ({err})") from None
    fields = (module_hash, epochs, raw_adjacency, raw_operations, raw_metrics)
    if [type(x) for x in fields] != [str, int, str, str, str]:
        got = ", ".join(type(x).__name__ for x in fields)
        raise DataFileError(f"expected [str hash, int epochs, str, str, str], got [{got}]")
    if not 0 < epochs < 2**31:
        raise DataFileError(f"epochs must be a positive 32-bit integer, got {epochs}")
    try:
        metrics = ModelMetrics.FromString(base64.b64decode(raw_metrics, validate=True))
    except (binascii.Error, message.DecodeError) as err:
        raise DataFileError(f"undecodable ModelMetrics ({err})") from None
    if len(metrics.evaluation_data) < 3:
        raise DataFileError(
            f"ModelMetrics has {len(metrics.evaluation_data)} evaluations, expected 3 (start, halfway, end)"
        )
    return module_hash, epochs, raw_adjacency, raw_operations, metrics


def check_cell(module_hash: str, raw_adjacency: str, raw_operations: str) -> list[int]:
    """Check a record's hash and cell; return the V op labels (see `OP_LABELS`).

    Checked: 2..7 vertices, a 0/1 strictly upper-triangular V x V matrix, at most 9 edges, known
    ops, input first and output last. Raises `DataFileError` saying what is wrong.
    """
    if len(module_hash) != 32 or not _HEX.issuperset(module_hash):
        raise DataFileError(f"module hash {module_hash!r} is not 32 lowercase hex digits")
    num_vertices = math.isqrt(len(raw_adjacency))
    if num_vertices * num_vertices != len(raw_adjacency) or not 2 <= num_vertices <= MAX_VERTICES:
        raise DataFileError(f"adjacency string of length {len(raw_adjacency)} is not a VxV matrix, V in 2..7")
    if raw_adjacency.strip("01"):
        raise DataFileError(f"adjacency {raw_adjacency!r} has characters other than '0' and '1'")
    if any("1" in raw_adjacency[v * num_vertices : v * num_vertices + v + 1] for v in range(num_vertices)):
        raise DataFileError(f"adjacency {raw_adjacency!r} is not strictly upper-triangular")
    if raw_adjacency.count("1") > MAX_EDGES:
        raise DataFileError(f"adjacency {raw_adjacency!r} has more than {MAX_EDGES} edges")
    ops = raw_operations.split(",")
    if len(ops) != num_vertices:
        raise DataFileError(f"{len(ops)} operations for a {num_vertices}-vertex adjacency")
    unknown = [op for op in ops if op not in OP_LABELS]
    if unknown:
        raise DataFileError(f"unknown operation(s) {unknown}; allowed: {sorted(OP_LABELS)}")
    if ops[0] != INPUT or ops[-1] != OUTPUT or INPUT in ops[1:] or OUTPUT in ops[:-1]:
        raise DataFileError(f"operations must be '{INPUT}', ..., '{OUTPUT}', got {ops}")
    return [OP_LABELS[op] for op in ops]


def cell_strings(matrix: np.ndarray, ops: Sequence[str]) -> tuple[str, str]:
    """(raw_adjacency, raw_operations) of a cell: (V, V) 0/1 matrix row-major as '0'/'1', ops joined by ','."""
    return "".join("1" if x else "0" for x in np.asarray(matrix).ravel().tolist()), ",".join(ops)


def encode_payload(
    module_hash: str, epochs: int, raw_adjacency: str, raw_operations: str, metrics: message.Message
) -> bytes:
    """The JSON payload of one record, as the official files write it (see `cell_strings`).

    metrics: a `ModelMetrics`.
    """
    raw_metrics = base64.b64encode(metrics.SerializeToString()).decode("ascii")
    return json.dumps([module_hash, int(epochs), raw_adjacency, raw_operations, raw_metrics]).encode("utf-8")
