"""Argument checks written once, used at every boundary (configs, the library, the CLI).

Each returns the checked value or raises :class:`~stellarnet.errors.ConfigError` with a
message that names the setting and the bad value.
"""

from __future__ import annotations

import math
import re
from typing import Any

from stellarnet.errors import ConfigError

MAX_SEED = 2**32 - 1
"""Largest seed ``keras.utils.set_random_seed`` (numpy) accepts."""
FLOAT32_TINY = 1.1754943508222875e-38
"""The smallest normal float32 (``numpy.finfo(numpy.float32).tiny``). TensorFlow trains in
float32 and flushes subnormals to zero on CPUs, so a smaller learning rate is no step at all."""
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32 (``numpy.finfo(numpy.float32).max``); a larger rate becomes inf."""
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""An experiment name: one folder name that is safe everywhere (no separator, no ``..``)."""
MAX_NAME_LENGTH = 100


def is_int(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[minimum, maximum]``, else raise ConfigError."""
    if is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return value
    if maximum is not None:
        wanted = f"an integer from {minimum} to {maximum}"
    elif minimum == 1:
        wanted = "a positive integer"
    else:
        wanted = f"an integer >= {minimum}"
    raise ConfigError(f"{name} must be {wanted}, got {value!r}")


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 1, else raise ConfigError naming ``name``."""
    return check_int(value, name, minimum=1)


def check_seed(seed: object) -> int:
    """Return ``seed`` or raise ConfigError unless it is an integer in [0, 2**32 - 1]."""
    return check_int(seed, "seed", minimum=0, maximum=MAX_SEED)


def check_learning_rate(learning_rate: Any) -> float:
    """Return ``learning_rate`` as a float, or raise ConfigError unless it is finite and > 0."""
    if isinstance(learning_rate, bool):
        raise ConfigError(f"learning rate must be a number, got {learning_rate!r}")
    try:
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise ConfigError(f"learning rate must be a number, got {learning_rate!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"learning rate must be finite and > 0, got {learning_rate!r}")
    if value < FLOAT32_TINY:
        raise ConfigError(
            f"learning rate {learning_rate!r} vanishes in float32, which TensorFlow trains in "
            f"(the smallest normal float32 is {FLOAT32_TINY:.4g}): give a rate from "
            f"{FLOAT32_TINY:.4g} to {FLOAT32_MAX:.4g}"
        )
    if value > FLOAT32_MAX:
        raise ConfigError(
            f"learning rate {learning_rate!r} overflows in float32, which TensorFlow trains in "
            f"(the largest float32 is {FLOAT32_MAX:.4g}): give a rate from {FLOAT32_TINY:.4g} "
            f"to {FLOAT32_MAX:.4g}"
        )
    return value


def is_safe_name(value: object, pattern: re.Pattern[str], max_length: int) -> bool:
    """Whether ``value`` is a string matching ``pattern`` whole, without ``..``, of at most
    ``max_length`` characters: one path component that cannot climb out of its folder."""
    return (
        isinstance(value, str)
        and pattern.fullmatch(value) is not None
        and ".." not in value
        and len(value) <= max_length
    )


def check_name(value: object, name: str = "name") -> str:
    """Return ``value`` if it is a safe experiment name (it becomes a folder under
    ``results/``): letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit,
    no ``..``, at most 100 characters. Else raise ConfigError naming ``name``."""
    if is_safe_name(value, SAFE_NAME, MAX_NAME_LENGTH):
        return value  # type: ignore[return-value]
    raise ConfigError(
        f"{name} must be a plain folder name (letters, digits, '.', '_' and '-', starting with "
        f"a letter or a digit, no '..', at most {MAX_NAME_LENGTH} characters), got {value!r}; "
        'e.g. name = "hr_relation"'
    )


def check_choice(value: object, name: str, known: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``known``, else raise ConfigError listing them."""
    if value not in known:
        raise ConfigError(f"{name} must be one of {list(known)}, got {value!r}")
    return value  # type: ignore[return-value]
