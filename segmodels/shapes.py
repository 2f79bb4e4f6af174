"""The input sizes every model accepts: sides that are multiples of 32, checked in one place.

Every backbone downsamples five times, so a side that is not a multiple of 32 would leave the
decoders' skips and upsamplings misaligned. The model library checks ``input_shape`` here and the
benchmark checks ``--image-size`` here; both name the nearest valid size. No Keras import: the
harness asks before it loads anything heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Every backbone downsamples five times.
SIZE_MULTIPLE = 32


def input_size_problem(*sides: int) -> str | None:
    """What is wrong with an input's sides (a square's one side, or height and width), or ``None``.

    The answer has no subject, so that each caller names what it checks, and ends with the nearest
    valid size:

    >>> input_size_problem(100, 128)
    'must be a multiple of 32 (the backbones downsample 5 times), got 100x128; try 96x128'
    """
    if all(s >= SIZE_MULTIPLE and s % SIZE_MULTIPLE == 0 for s in sides):
        return None
    near = [max(SIZE_MULTIPLE, round(s / SIZE_MULTIPLE) * SIZE_MULTIPLE) for s in sides]
    return (
        f"must be a multiple of {SIZE_MULTIPLE} (the backbones downsample 5 times), "
        f"got {'x'.join(map(str, sides))}; try {'x'.join(map(str, near))}"
    )


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Validates ``(height, width, 3)`` with sides that are multiples of 32.

    Raises:
        ValueError: Not three dimensions with three channels, or a side :func:`input_size_problem`
            refuses.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {tuple(input_shape)}.")
    problem = input_size_problem(shape[0], shape[1])
    if problem:
        raise ValueError(f"input_shape {shape} is not supported: each side {problem}.")
    return shape  # type: ignore[return-value]
