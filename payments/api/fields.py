"""Input fields and serializers in Stripe's dialect.

Every input serializer rejects parameters it does not know with
`parameter_unknown`, naming the parameter in bracket form
(`payment_method_data[card][foo]`), as Stripe does.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from payments.services.metadata import validate_metadata


class StripeSerializer(serializers.Serializer):
    """Rejects unknown parameters; `expand` is accepted everywhere."""

    always_allowed = frozenset({"expand"})

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Invalid request: expected an object of parameters."]}
            )
        unknown = [k for k in data if k not in self.fields and k not in self.always_allowed]
        if unknown:
            name = unknown[0]
            raise serializers.ValidationError(
                {
                    name: [
                        serializers.ErrorDetail(
                            f"Received unknown parameter: {self._path(name)}",
                            code="parameter_unknown",
                        )
                    ]
                }
            )
        return super().to_internal_value(data)

    def _path(self, name: str) -> str:
        parts = []
        node: Any = self
        while node is not None and getattr(node, "field_name", None):
            parts.append(node.field_name)
            node = node.parent
        path = (
            "".join(reversed(parts))
            if len(parts) <= 1
            else parts[-1] + "".join(f"[{p}]" for p in reversed(parts[:-1]))
        )
        return f"{path}[{name}]" if path else name


class MetadataField(serializers.Field):
    """`metadata[key]=value` pairs; `metadata=""` clears; a value of "" deletes a key."""

    def to_internal_value(self, data: Any) -> dict[str, str] | None:
        from config.errors import InvalidRequestError

        try:
            return validate_metadata(data, param=self.field_name or "metadata")
        except InvalidRequestError as error:
            raise serializers.ValidationError(error.message) from None

    def to_representation(self, value: Any) -> Any:
        return value


class ExpandField(serializers.ListField):
    child = serializers.CharField(max_length=200)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [data]
        return super().to_internal_value(data)


class StripeBooleanField(serializers.BooleanField):
    pass


class AmountField(serializers.IntegerField):
    """A positive integer count of minor units (DESIGN rule 1): no decimals."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 99_999_999)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) or (
            isinstance(data, str) and not data.strip().lstrip("-").isdigit()
        ):
            raise serializers.ValidationError(
                "Invalid integer: amounts are whole numbers of the currency's minor unit."
            )
        return super().to_internal_value(data)


class ListParamsSerializer(StripeSerializer):
    """Stripe's list parameters."""

    limit = serializers.IntegerField(min_value=1, max_value=100, required=False, default=10)
    starting_after = serializers.CharField(required=False, max_length=64)
    ending_before = serializers.CharField(required=False, max_length=64)
    created = serializers.JSONField(required=False)
    expand = ExpandField(required=False)


def list_params(**extra_fields: Any) -> type:
    """A list-parameter serializer with resource-specific filters."""
    name = "ListParams" + "".join(part.title() for part in sorted(extra_fields)).replace("_", "")
    return type(name, (ListParamsSerializer,), dict(extra_fields))
