"""Derive a pyarrow schema from a NamedTuple record type, so each record is defined once."""
from __future__ import annotations

import typing
from typing import NamedTuple, Union

import pyarrow as pa

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _type(annotation: object) -> pa.DataType:
    if typing.get_origin(annotation) in (list, typing.Sequence):
        (item,) = typing.get_args(annotation)
        return pa.list_(_type(item))
    return _ARROW[annotation]


def _field(name: str, annotation: object) -> pa.Field:
    nullable = False
    if typing.get_origin(annotation) is Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    return pa.field(name, _type(annotation), nullable=nullable)


def arrow_schema(record_type: type[NamedTuple]) -> pa.Schema:
    """The pyarrow schema whose columns are the record's fields, in order, with their nullability."""
    hints = typing.get_type_hints(record_type)
    return pa.schema([_field(name, hints[name]) for name in record_type._fields])
