"""DRF number fields that take a JSON number, or a string in plain decimal notation.

DRF converts strings with ``int()``/``float()``/``Decimal()``, so ``"1_0"`` was
10 and ``"1e3"`` 1000; here such strings are refused as "not a valid number".
"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from routing.numbers import is_plain_number


class _PlainNumber(serializers.Field):
    whole = False

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and not is_plain_number(data, whole=self.whole):
            self.fail("invalid")
        return super().to_internal_value(data)


class PlainIntegerField(_PlainNumber, serializers.IntegerField):
    whole = True


class PlainBigIntegerField(_PlainNumber, serializers.BigIntegerField):
    whole = True


class PlainFloatField(_PlainNumber, serializers.FloatField):
    pass


class PlainDecimalField(_PlainNumber, serializers.DecimalField):
    pass


_PLAIN: dict[type[serializers.Field], type[serializers.Field]] = {
    serializers.IntegerField: PlainIntegerField,
    serializers.BigIntegerField: PlainBigIntegerField,
    serializers.FloatField: PlainFloatField,
    serializers.DecimalField: PlainDecimalField,
}


class PlainNumbersModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose number fields are the plain ones above."""

    serializer_field_mapping: dict[type[models.Field], type[serializers.Field]] = {
        model_field: _PLAIN.get(field, field)
        for model_field, field in (
            serializers.ModelSerializer.serializer_field_mapping.items()
        )
    }
