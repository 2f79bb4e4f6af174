"""The classes of the Oxford-IIIT Pet trimaps, numbered as every model, metric and figure here
numbers them (the dataset's 1, 2, 3 minus one)."""

from __future__ import annotations

PET, BACKGROUND, BORDER = 0, 1, 2
#: Class names by id.
CLASS_NAMES = ("pet", "background", "border")
NUM_CLASSES = len(CLASS_NAMES)
