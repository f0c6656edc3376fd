"""Kubernetes resource quantities ("1Gi", "500M", "1.5e3"), parsed exactly.

The operator compares claim sizes (growth is allowed, shrinking is refused), so it needs the
number behind a quantity, not just its text.
"""

from __future__ import annotations

import re
from decimal import Decimal, DecimalException

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_PATTERN = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$")

# The same grammar, for the CRD schema's `pattern` (so the API server rejects what we cannot parse).
SCHEMA_PATTERN = r"^([+-]?[0-9]+(\.[0-9]*)?|[+-]?\.[0-9]+)(([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$"


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity; raises QuantityError for anything Kubernetes would reject."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    match = _PATTERN.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 1Gi, 500Mi, 10G)")
    number, exponent, suffix = match.groups()
    try:
        result = Decimal(number)
        if exponent:
            result *= Decimal(10) ** int(exponent[1:])
        else:
            result *= _SUFFIXES[suffix or ""]
    except (DecimalException, OverflowError) as exc:  # decimal.Overflow is a DecimalException
        raise QuantityError(f"{value!r} is out of range") from exc
    return result
