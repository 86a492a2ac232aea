"""The Open Inference Protocol (KServe V2) over HTTP/REST for the TAML model.

One infer request is a batch of N instances given as named tensors of one dimension ``[N]`` (or
``[N, 1]``): ``user_id``, ``item_id`` (INT64), and optionally ``position`` (INT32), ``device``,
``ts`` (BYTES, UTF-8 text). The answer has the FP32 tensors ``p_ctr``, ``p_cvr``, ``p_ctcvr``
of shape ``[N]`` and the model version both as ``model_version`` and in ``parameters``. Tensor
data may be JSON (``data``) or the binary tensor extension (``parameters.binary_data_size`` and
the ``Inference-Header-Content-Length`` header, what the kserve client sends by default); the
answer is always JSON. Each row goes through the same :class:`~serving.schemas.Instance`
validation as V1, so a bad value is a 400 naming ``TENSOR.data[i]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from serving.body import OversizedInt, parse_json
from serving.errors import RequestError
from serving.schemas import Instance, error_message

HEADER_LENGTH = "inference-header-content-length"
# name -> (datatype, required)
INPUTS: dict[str, tuple[str, bool]] = {
    "user_id": ("INT64", True),
    "item_id": ("INT64", True),
    "position": ("INT32", False),
    "device": ("BYTES", False),
    "ts": ("BYTES", False),
}
OUTPUTS = ("p_ctr", "p_cvr", "p_ctcvr")
_RANGE = {"INT64": (-(2**63), 2**63 - 1), "INT32": (-(2**31), 2**31 - 1)}
_WIDTH = {"INT64": "<i8", "INT32": "<i4"}
_MAX_NAME = 64


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    instances: list[Instance]
    outputs: tuple[str, ...]


def _err(field: str | None, message: str, status: int = 400) -> RequestError:
    return RequestError(status, f"{field}: {message}" if field else message, field)


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tail) of a request body; the tail is empty without the extension."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise _err(
            HEADER_LENGTH,
            f"must be a byte count of at most the body's {len(body)} bytes, got {header_length[:30]!r}",
        )
    n = int(header_length)
    return body[:n], body[n:]


def _flat(data: Any, field: str) -> list[Any]:
    if not isinstance(data, list):
        raise _err(field, f"expected a list, got {_kind(data)}")
    if any(isinstance(v, list) for v in data):  # [[v], [v], ...] for shape [N, 1]
        out: list[Any] = []
        for i, v in enumerate(data):
            if not isinstance(v, list) or any(isinstance(x, list) for x in v):
                raise _err(f"{field}[{i}]", "nested deeper than the tensor's two dimensions")
            out.extend(v)
        return out
    return data


def _from_binary(raw: bytes, datatype: str, n: int, field: str) -> list[Any]:
    if datatype in _WIDTH:
        width = int(_WIDTH[datatype][-1])
        if len(raw) != n * width:
            raise _err(field, f"{len(raw)} bytes of {datatype} data for {n} elements (need {n * width})")
        return np.frombuffer(raw, dtype=_WIDTH[datatype]).tolist()
    out: list[Any] = []
    pos = 0
    while pos < len(raw):  # BYTES: each element is a 4-byte little-endian length, then the bytes
        if pos + 4 > len(raw):
            raise _err(field, f"element {len(out)}: truncated length prefix")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > len(raw):
            raise _err(field, f"element {len(out)}: {size} bytes announced, {len(raw) - pos} left")
        try:
            out.append(raw[pos : pos + size].decode())
        except UnicodeDecodeError:
            raise _err(f"{field}[{len(out)}]", "BYTES element is not UTF-8 text") from None
        pos += size
    return out


def _shape(shape: Any, field: str, max_rows: int) -> int:
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise _err(field, "expected a list of integers")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise _err(field, f"expected [N] or [N, 1], got {shape[:4]}")
    n = shape[0]
    if n < 1:
        raise _err(field, f"at least one row is required, got {n}")
    if n > max_rows:
        raise _err(field, f"{n} rows, at most {max_rows} per request")
    return n


def _check_values(values: list[Any], datatype: str, name: str) -> None:
    for i, v in enumerate(values):
        field = f"{name}.data[{i}]"
        if datatype == "BYTES":
            if not isinstance(v, str):
                raise _err(field, f"expected a string for BYTES, got {_kind(v)}")
        elif isinstance(v, OversizedInt):
            raise _err(field, f"integer of {v.digits} digits is out of {datatype} range")
        elif type(v) is not int:
            raise _err(field, f"expected an integer for {datatype}, got {_kind(v)}")
        elif not _RANGE[datatype][0] <= v <= _RANGE[datatype][1]:
            raise _err(field, f"{v} is out of {datatype} range")


def _tensors(inputs: Any, tail: bytes, max_rows: int) -> dict[str, list[Any]]:
    if inputs is None:
        raise _err("inputs", "field required")
    if not isinstance(inputs, list) or not inputs:
        raise _err("inputs", f"expected a non-empty list of tensors, got {_kind(inputs)}")
    tensors: dict[str, list[Any]] = {}
    rows: int | None = None
    pos = 0
    for k, t in enumerate(inputs):
        where = f"inputs[{k}]"
        if not isinstance(t, dict):
            raise _err(where, f"expected a tensor object, got {_kind(t)}")
        name = t.get("name")
        if not isinstance(name, str):
            raise _err(f"{where}.name", f"expected a string, got {_kind(name)}")
        if name not in INPUTS:
            raise _err(f"{where}.name", f"unknown input {name[:_MAX_NAME]!r}; inputs are {', '.join(INPUTS)}")
        if name in tensors:
            raise _err(f"{where}.name", f"input {name!r} given twice")
        datatype, _ = INPUTS[name]
        if t.get("datatype") != datatype:
            got = t.get("datatype")
            shown = repr(got[:_MAX_NAME]) if isinstance(got, str) else _kind(got)
            raise _err(f"{name}.datatype", f"expected {datatype}, got {shown}")
        n = _shape(t.get("shape"), f"{name}.shape", max_rows)
        params = t.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _err(f"{name}.parameters", f"expected an object, got {_kind(params)}")
        size = (params or {}).get("binary_data_size")
        if "data" in t:
            if size is not None:
                raise _err(name, "both data and parameters.binary_data_size are given")
            values = _flat(t["data"], f"{name}.data")
        elif size is not None:
            if type(size) is not int or size < 0 or pos + size > len(tail):
                raise _err(
                    f"{name}.parameters.binary_data_size",
                    f"must be a byte count within the {len(tail) - pos} binary bytes left",
                )
            values = _from_binary(tail[pos : pos + size], datatype, n, f"{name}.data")
            pos += size
        else:
            raise _err(f"{name}.data", "field required (or parameters.binary_data_size)")
        if len(values) != n:
            raise _err(f"{name}.data", f"{len(values)} elements for shape {t['shape']}")
        if rows is not None and n != rows:
            raise _err(f"{name}.shape", f"{n} rows, but the other inputs have {rows}")
        rows = n
        _check_values(values, datatype, name)
        tensors[name] = values
    if pos != len(tail):
        raise _err(None, f"{len(tail) - pos} binary bytes after the JSON header are not claimed by any input")
    for name, (_, required) in INPUTS.items():
        if required and name not in tensors:
            raise _err("inputs", f"input {name!r} is required")
    return tensors


def _requested(outputs: Any) -> tuple[str, ...]:
    if outputs is None:
        return OUTPUTS
    if not isinstance(outputs, list):
        raise _err("outputs", f"expected a list, got {_kind(outputs)}")
    names: list[str] = []
    for k, o in enumerate(outputs):
        name = o.get("name") if isinstance(o, dict) else None
        if not isinstance(name, str) or name not in OUTPUTS:
            shown = repr(name[:_MAX_NAME]) if isinstance(name, str) else _kind(name)
            raise _err(f"outputs[{k}].name", f"expected one of {', '.join(OUTPUTS)}, got {shown}")
        if name not in names:
            names.append(name)
    return tuple(names) or OUTPUTS


def parse_infer(body: bytes, header_length: str | None, max_rows: int) -> InferRequest:
    """A V2 infer request body -> validated instances, or :class:`RequestError` naming the field."""
    head, tail = split_body(body, header_length)
    data = parse_json(head)
    rid = data.get("id")
    if rid is not None and not isinstance(rid, str):
        raise _err("id", f"expected a string, got {_kind(rid)}")
    params = data.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise _err("parameters", f"expected an object, got {_kind(params)}")
    tensors = _tensors(data.get("inputs"), tail, max_rows)
    outputs = _requested(data.get("outputs"))
    n = len(tensors["user_id"])
    instances = []
    for i in range(n):
        row = {name: values[i] for name, values in tensors.items()}
        try:
            instances.append(Instance.model_validate(row))
        except ValidationError as e:
            err = e.errors(include_url=False, include_input=True, include_context=False)[0]
            field = f"{err['loc'][0]}.data[{i}]" if err["loc"] else f"inputs (row {i})"
            raise _err(field, error_message(err)) from None
    return InferRequest(rid, instances, outputs)


def infer_response(
    model_name: str, request: InferRequest, predictions: list[dict[str, Any]]
) -> dict[str, Any]:
    version = predictions[0]["model_version"]
    n = len(predictions)
    out: dict[str, Any] = {
        "model_name": model_name,
        "model_version": version,
        "parameters": {
            "model_version": version,
            "unknown_users": sum(bool(p["unknown_user"]) for p in predictions),
            "unknown_items": sum(bool(p["unknown_item"]) for p in predictions),
        },
        "outputs": [
            {
                "name": name,
                "datatype": "FP32",
                "shape": [n],
                "data": np.asarray([p[name] for p in predictions], dtype=np.float32).tolist(),
            }
            for name in request.outputs
        ],
    }
    if request.id is not None:
        out["id"] = request.id
    return out


def model_metadata(model_name: str, version: str | None) -> dict[str, Any]:
    return {
        "name": model_name,
        "versions": [version] if version else [],
        "platform": "pytorch_taml",
        "inputs": [{"name": n, "datatype": d, "shape": [-1]} for n, (d, _) in INPUTS.items()],
        "outputs": [{"name": n, "datatype": "FP32", "shape": [-1]} for n in OUTPUTS],
    }
