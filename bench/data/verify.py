"""Every file of a dataset decoded once, as the pipeline will decode it, before any training.

`load_release` reads, hashes and header-checks every file on each load, which is cheap. The first
time a dataset is seen, this module also decodes each image and trimap in full with the decoder
the pipeline uses (`bench.data.decoders`: TensorFlow's for the tf.data path, Pillow's for the array
path; both give the same verdicts, which the tests check on every kind of bad file), so a file that would stop training mid-epoch with
`jpeg::Uncompress failed`, naming no file, is named here, with what to do about it; and it checks
the trimaps' values on the decoded pixels. A record that the dataset passed is then kept under the
cache, keyed by the dataset's fingerprint (a digest of every file's bytes) and the decoder, which
the record names with its version, so a later load of the same data pays a file lookup instead.

A JPEG cut short and given back its end marker (FF D9) decodes without an error: libjpeg fills what
is missing with zeros, which show as flat grey, and only warns, and neither TensorFlow nor Pillow
passes the warning on. So each JPEG is decoded a second time with filler bytes inserted before its
end marker: a complete image never reads past its own data, and both decodes agree; one whose data
ran out reads the filler where it read zeros before, and they differ. This holds for progressive
JPEGs too; on the real sample it catches every copy cut anywhere from 30% to 99% of its length.

What no decoder can catch is damage that still decodes: bytes garbled in the compressed data that
libjpeg reads as other, valid pixels. The release publishes no checksums to compare with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.data.cache import cache_root
from bench.data.decoders import DecodeError, Decoder
from bench.data.errors import DataError
from bench.data.provenance import digest_bytes

if TYPE_CHECKING:
    from bench.data.release import Example

logger = logging.getLogger(__name__)

# Bump when a check is added or changed: datasets verified without it are then verified again.
CHECKS_VERSION = 2
TRIMAP_VALUES = (1, 2, 3)
# How tf.io.decode_image tells formats apart: by their first bytes.
_MAGIC = {b"\xff\xd8": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP"}
_JPEG_END = b"\xff\xd9"
# No 0xFF byte, so no marker; alternating bits, so it cannot decode as libjpeg's zero fill does.
_FILLER = b"\x55" * 64
_MAX_REPORTED = 10
_LIBJPEG_WARNING = re.compile(r"^(Corrupt JPEG data: |Premature end of JPEG file$)")


def verified_dir() -> Path:
    """Where the records of fully decoded datasets are kept, one JSON file per fingerprint and decoder."""
    return cache_root() / "pets-verified"


def is_verified(fingerprint: str, decoder: Decoder) -> bool:
    """Whether the data with this fingerprint was fully decoded by these checks and this decoder."""
    try:
        record = json.loads(_record_path(fingerprint, decoder).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and all(record.get(k) == v for k, v in _checked_by(decoder).items())


def verify_examples(
    examples: Sequence[Example], digests: Sequence[tuple[bytes, bytes]], fingerprint: str, decoder: Decoder
) -> None:
    """Decode every example in full, unless the data with this fingerprint was verified before.

    Args:
        examples: every example of the dataset.
        digests: each example's (image, trimap) SHA-256 digests, as fingerprinted. A file whose
            bytes differ now is reported, so the record kept is always of the bytes decoded.
        fingerprint: the dataset's fingerprint, the key of the record kept when all decode.
        decoder: the decoder the pipeline will decode with (`bench.data.decoders`).

    Raises:
        DataError: naming each file that fails (the first ten) and what to do about it.
    """
    if is_verified(fingerprint, decoder):
        return
    logger.info("Decoding all %d examples once with %s, to verify them before any training",
                len(examples), decoder.name)
    start = time.perf_counter()
    with _decoder_warnings_kept_off_the_terminal(), ThreadPoolExecutor() as pool:
        # The decoders (TensorFlow's and Pillow's) and hashing release the GIL
        problems = [p for p in pool.map(lambda e, d: _problem(e, d, decoder), examples, digests) if p is not None]
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        more = len(problems) - _MAX_REPORTED
        raise DataError(
            f"{len(problems)} of {len(examples)} examples fail to decode:\n  "
            + "\n  ".join(problems[:_MAX_REPORTED])
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    seconds = time.perf_counter() - start
    logger.info("All %d examples decode (%.1f s); not again for this data", len(examples), seconds)
    record = {
        "fingerprint": fingerprint,
        "examples": len(examples),
        "seconds": round(seconds, 2),
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_checked_by(decoder),
    }
    _remember(_record_path(fingerprint, decoder), record)


def verify_example(example: Example, digests: tuple[bytes, bytes], decoder: Decoder) -> None:
    """Decode an example's image and trimap in full, as the pipeline will; check the trimap's values.

    Raises:
        DataError: naming the file, the problem and what to do about it.
    """
    data = _read_unchanged(example.image, digests[0], example.fix)
    kind = next((name for magic, name in _MAGIC.items() if data.startswith(magic)), "image")
    try:
        pixels = decoder.decode_image(data)
    except DecodeError as error:
        raise DataError(f"{example.image}: corrupt {kind} data, cannot be decoded ({error}); {example.fix}") from error
    if kind == "JPEG" and _runs_out_of_data(data, pixels, decoder):
        raise DataError(
            f"{example.image}: truncated JPEG: its data ends before the image does, the rest would "
            f"decode as grey or blur (a cut-short copy given back its end marker?); {example.fix}"
        )

    data = _read_unchanged(example.trimap, digests[1], example.fix)
    try:
        values = decoder.decode_trimap(data)
    except DecodeError as error:
        raise DataError(f"{example.trimap}: corrupt PNG data, cannot be decoded ({error}); {example.fix}") from error
    if values.min() < TRIMAP_VALUES[0] or values.max() > TRIMAP_VALUES[-1]:
        bad = sorted(set(np.unique(values).tolist()) - set(TRIMAP_VALUES))
        raise DataError(
            f"{example.trimap}: trimap values {bad} outside {{1, 2, 3}} "
            f"(1 = pet, 2 = background, 3 = border); {example.fix}"
        )


def _problem(example: Example, digests: tuple[bytes, bytes], decoder: Decoder) -> str | None:
    try:
        verify_example(example, digests, decoder)
    except DataError as error:
        return str(error)
    return None


def _read_unchanged(path: Path, digest: bytes, fix: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error}); {fix}") from error
    if digest_bytes(data) != digest:
        raise DataError(f"{path}: changed while the dataset was loading; load it again")
    return data


def _runs_out_of_data(data: bytes, decoded: np.ndarray, decoder: Decoder) -> bool:
    """Whether a JPEG that decoded reads past its compressed data (see the module docstring)."""
    end = data.rfind(_JPEG_END)
    if end < 0:  # without an end marker it fails to decode, and never gets here
        return False
    try:
        again = decoder.decode_image(data[:end] + _FILLER + data[end:])
    except DecodeError:
        return True  # the filler was read as data, and broke it
    return not np.array_equal(decoded, again)


@contextlib.contextmanager
def _decoder_warnings_kept_off_the_terminal() -> Iterator[None]:
    """Keeps libjpeg's warnings off stderr while the block runs; whatever else is printed there
    meanwhile is passed on after it.

    The second decode of each JPEG (filler before its end marker) makes libjpeg print "Corrupt JPEG
    data: 64 extraneous bytes before marker 0xd9" for every complete image, and a truncated one
    "Premature end of JPEG file": expected, and every file they concern is named by the checks
    anyway. libjpeg prints from C to file descriptor 2, so the descriptor is what is redirected.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:  # no stderr to guard
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", errors="replace").splitlines()
            kept = [line for line in lines if line.strip() and not _LIBJPEG_WARNING.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _checked_by(decoder: Decoder) -> dict[str, object]:
    return {"checks": CHECKS_VERSION, "decoder": decoder.name, "decoder_version": decoder.version}


def _record_path(fingerprint: str, decoder: Decoder) -> Path:
    return verified_dir() / f"{fingerprint}.{decoder.name}.json"


def _remember(final: Path, record: dict[str, object]) -> None:
    """Keep the record (written whole, then renamed into place); a cache that cannot be written only
    means the next load verifies again."""
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, final)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        logger.warning(
            "Could not record that this data was verified (%s); the next load verifies it again", error
        )
