"""What data a result was computed on: the record the harness stores beside every result.

The fingerprint is a SHA-256 of content, never of paths or timestamps, so the same data gives the
same fingerprint on any machine, in any directory. What it covers depends on the source:

- `dir` and `synthetic`: the raw bytes of every listed image and trimap, with each example's name,
  split and position. Reading and hashing the bytes costs about 1 s per GB here (SHA-256 with the
  CPU's SHA extensions), ~1 s for the full 800 MB release: the loader reads every file once anyway to
  validate it, and names-and-sizes would miss a re-encoded image or a corrected trimap of the same
  size, which are exactly the edits that change a benchmark's numbers.
- `tfds`: the dataset's full name, each split's example count, byte count and shard lengths, and
  the SHA-256 of the source archives that TFDS verified when it prepared the data. Hashing the
  prepared records again would cost as much as the release and pin nothing more than TFDS did.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

SourceKind = Literal["tfds", "dir", "synthetic"]


@dataclass(frozen=True)
class Provenance:
    """The data behind a set of results (stored as the `dataset_*` and `synthetic` columns).

    Attributes:
        source: "tfds", "dir" or "synthetic".
        location: where the data was read from (TFDS data directory or release directory).
        train_size: examples in the train split (the release's trainval list).
        test_size: examples in the test split.
        fingerprint: SHA-256 hex digest of the content (see the module docstring).
        synthetic: True when the images are generated, not real photos.
    """

    source: SourceKind
    location: str
    train_size: int
    test_size: int
    fingerprint: str
    synthetic: bool

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict, keys as the attributes."""
        return asdict(self)

    def describe(self) -> str:
        """One line for logs and reports; a synthetic set says so first."""
        what = (
            "SYNTHETIC stand-in for Oxford-IIIT Pet (generated scenes, not real photos; "
            "numbers are not comparable with the real dataset)"
            if self.synthetic
            else f"Oxford-IIIT Pet via {self.source}"
        )
        return (
            f"{what}: {self.train_size} train / {self.test_size} test images from {self.location} "
            f"(fingerprint {self.fingerprint[:12]})"
        )


def digest_bytes(data: bytes) -> bytes:
    """SHA-256 digest of one file's bytes."""
    return hashlib.sha256(data).digest()


def fingerprint_examples(splits: dict[str, list[tuple[str, bytes, bytes]]]) -> str:
    """Fingerprint of named (name, image digest, trimap digest) examples, split by split, in order."""
    h = hashlib.sha256(b"segbench-pets-v1\0")
    for split in sorted(splits):
        h.update(f"{split}\0{len(splits[split])}\0".encode())
        for name, image_digest, trimap_digest in splits[split]:
            h.update(name.encode() + b"\0" + image_digest + trimap_digest)
    return h.hexdigest()


def fingerprint_json(record: Any) -> str:
    """Fingerprint of a JSON-able record (canonical form: sorted keys, no whitespace)."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
