"""The `dir` source: the Oxford-IIIT Pet release on disk, as a directory or as its two archives.

Release layout (what `images.tar.gz` and `annotations.tar.gz` extract to):

    images/<name>.jpg                 photos; a few are really GIF or RGBA PNG, a few grayscale
    annotations/trimaps/<name>.png    8-bit single channel: 1 = pet, 2 = background, 3 = border
    annotations/trainval.txt          train split, lines "<name> <class> <species> <breed>"
    annotations/test.txt              test split

Loading validates every listed example up front, so bad data fails here with a `DataError` naming
the file and what to do, not hours into training: list files that are not UTF-8, list lines
without an image or a trimap or that point outside the release, empty splits, names in both
splits, files that cannot be read, images of a format the pipeline cannot decode or whose header
claims an absurd size, trimaps that are not 8-bit single-channel PNGs or not of their image's size.
Each file is read, hashed (the fingerprint) and parsed to its header on every load; the first time
a fingerprint is seen, every file is also decoded in full as the pipeline decodes it, which finds
corrupt and cut-short files and trimap values outside {1, 2, 3} (`bench.data.verify`).

The splits are tf.data pipelines that decode with TensorFlow, or, with `as_arrays=True`, arrays
decoded with Pillow once and cached (`bench.data.arrays`), which need no TensorFlow.

The archives are extracted once into the cache (atomically) and reused while they are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from bench.data.arrays import cached_splits, decode_split
from bench.data.cache import atomic_directory, cache_root
from bench.data.decoders import PILLOW, TENSORFLOW, tf_decode_image, tf_decode_trimap
from bench.data.errors import DataError
from bench.data.pipeline import PetSplits, preprocess, tensorflow
from bench.data.provenance import Provenance, digest_bytes, fingerprint_examples
from bench.data.verify import verify_examples

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
TRIMAPS_DIR = "annotations/trimaps"
SPLIT_LISTS = {"train": "annotations/trainval.txt", "test": "annotations/test.txt"}
ARCHIVES = ("images.tar.gz", "annotations.tar.gz")
RELEASE_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
# What tf.io.decode_image reads; PIL names the format from the file's bytes, not its extension.
DECODABLE_FORMATS = {"JPEG", "PNG", "GIF", "BMP"}
# Refused before decoding: a corrupt header or a decompression bomb. The release's photos are a few
# megapixels at most (the sample's largest is 1600x1200).
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Example:
    """One listed example: its name and files, and where it is listed (for error messages)."""

    name: str
    image: Path
    trimap: Path
    listed_at: str  # "<list file>:<line>"

    @property
    def fix(self) -> str:
        """What to do about a bad file of this example, for error messages."""
        return (
            f"re-download/re-extract the release ({RELEASE_URL}), "
            f"or delete the file and its line {self.listed_at}"
        )


def is_release_dir(path: Path) -> bool:
    """Whether `path` looks like an extracted release (it has images/ or annotations/)."""
    return (path / IMAGES_DIR).is_dir() or (path / "annotations").is_dir()


def resolve_release(path: str | Path) -> Path:
    """The release directory for `path`: `path` itself, or its two archives extracted into the cache.

    Raises:
        DataError: `path` is neither a release directory nor a directory with both archives, or an
            archive is corrupt.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected the Oxford-IIIT Pet release layout)")
    if is_release_dir(path):
        return path
    archives = [path / name for name in ARCHIVES]
    present = [a for a in archives if a.is_file()]
    if not present:
        raise DataError(
            f"{path}: neither the release layout ({IMAGES_DIR}/, {TRIMAPS_DIR}/, "
            f"{SPLIT_LISTS['train']}, {SPLIT_LISTS['test']}) nor the release archives "
            f"({', '.join(ARCHIVES)}; from {RELEASE_URL})"
        )
    if len(present) < len(archives):
        missing = next(a for a in archives if not a.is_file())
        raise DataError(f"{missing}: missing (the release needs both {' and '.join(ARCHIVES)})")
    return extract_archives(archives)


def extract_archives(archives: list[Path]) -> Path:
    """Extract the release archives once into the cache; reuse the extraction while they are unchanged.

    The cache entry is keyed by each archive's resolved path, size and modification time: hashing
    800 MB of archives on every load to find an extraction would cost more than it protects.
    """
    key = hashlib.sha256()
    for archive in archives:
        stat = archive.stat()
        key.update(f"{archive.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    final = cache_root() / "pets-release" / key.hexdigest()[:16]
    if is_release_dir(final):
        return final
    logger.info("Extracting %s into %s (once; reused while the archives are unchanged)",
                " and ".join(str(a) for a in archives), final)
    with atomic_directory(final) as tmp:
        for archive in archives:
            _extract(archive, tmp)
        for needed in (IMAGES_DIR, TRIMAPS_DIR, *SPLIT_LISTS.values()):
            if not (tmp / needed).exists():
                raise DataError(
                    f"{archives[0].parent}: the archives hold no {needed} "
                    f"(expected the Oxford-IIIT Pet release archives from {RELEASE_URL})"
                )
    return final


def _extract(archive: Path, into: Path) -> None:
    # "r:*" also reads the release's archives, which are plain tar despite their .tar.gz names.
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")  # refuses links and paths out of `into`
            else:  # Python < 3.10.12 / 3.11.4
                for member in tar.getmembers():
                    target = (into / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or into.resolve() not in target.parents:
                        raise tarfile.TarError(f"unsafe member {member.name!r}")
                tar.extractall(into)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{archive}: corrupt or unreadable archive ({type(error).__name__}: {error}); "
            f"download it again from {RELEASE_URL}"
        ) from error


def read_split_list(root: Path, split: str) -> list[Example]:
    """The examples a split's list file names, each with its image and trimap checked to exist.

    Blank lines and `#` comments are skipped; only the first field (the name) is used. A name must
    not lead out of the release: `../x` and `/x` are refused (checked on the path as written, so a
    release whose images/ is a link to another disk still loads).
    """
    list_path = root / SPLIT_LISTS[split]
    if not list_path.is_file():
        raise DataError(f"{list_path}: {split} split list not found")
    try:
        raw = list_path.read_bytes()
    except OSError as error:
        raise DataError(f"{list_path}: cannot read it ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{list_path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x}); the release's "
            f"lists are plain ASCII: re-download/re-extract annotations.tar.gz ({RELEASE_URL}), "
            "or fix the line"
        ) from error
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        name = fields[0]
        where = f"{list_path}:{number}"
        if name in seen:
            raise DataError(f"{where}: {name!r} is listed twice (first at line {seen[name]})")
        seen[name] = number
        image = root / IMAGES_DIR / f"{name}.jpg"
        trimap = root / TRIMAPS_DIR / f"{name}.png"
        for kind, path in (("image", image), ("trimap", trimap)):
            if not Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root)):
                raise DataError(
                    f"{where}: entry {name!r} would read {os.path.abspath(path)}, outside the dataset "
                    f"folder {root}; entries name files in {IMAGES_DIR}/: fix or delete the line"
                )
            if path.exists() and not path.is_file():
                raise DataError(
                    f"{where}: the {kind} of {name!r}, {path}, is not a regular file; "
                    "re-extract the release, or delete the line"
                )
            if not path.is_file():
                raise DataError(f"{where}: {name!r} has no {kind} ({path} not found)")
        examples.append(Example(name, image, trimap, where))
    if not examples:
        raise DataError(f"{list_path}: the {split} split is empty (no names listed)")
    return examples


def check_example(example: Example) -> tuple[bytes, bytes]:
    """Check one example's files to their headers; return the SHA-256 digests of the image and trimap.

    Cheap, so it runs on every load; `bench.data.verify` decodes the files in full, once.

    Raises:
        DataError: naming the file, the problem and what to do about it.
    """
    image_bytes = _read(example.image, example)
    image_format, _, image_size = _header(example.image, image_bytes, "image", example)
    if image_format not in DECODABLE_FORMATS:
        raise DataError(
            f"{example.image}: {image_format} image; the pipeline decodes "
            f"{', '.join(sorted(DECODABLE_FORMATS))}; {example.fix}"
        )

    trimap_bytes = _read(example.trimap, example)
    trimap_format, trimap_mode, trimap_size = _header(example.trimap, trimap_bytes, "trimap", example)
    if trimap_format != "PNG" or trimap_mode != "L":
        raise DataError(
            f"{example.trimap}: trimap must be an 8-bit single-channel PNG, "
            f"got {trimap_format} mode {trimap_mode}; {example.fix}"
        )
    if trimap_size != image_size:
        raise DataError(
            f"{example.trimap}: trimap is {trimap_size[0]}x{trimap_size[1]} but its image "
            f"{example.image.name} is {image_size[0]}x{image_size[1]} (width x height); {example.fix}"
        )
    return digest_bytes(image_bytes), digest_bytes(trimap_bytes)


def _read(path: Path, example: Example) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(
            f"{path}: cannot read it ({error.strerror or error}); check that it is a file you may "
            f"read, or {example.fix}"
        ) from error


def _header(
    path: Path, data: bytes, what: str, example: Example
) -> tuple[str, str, tuple[int, int]]:
    """The format, mode and (width, height) a file's header gives; Pillow reads no pixels for this."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            header = image.format, image.mode, image.size
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: its header claims a huge {what} ({error}); {example.fix}") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable {what} ({error}); {example.fix}") from error
    width, height = header[2]
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: its header claims {width}x{height} pixels, over the {MAX_PIXELS:,} this loader "
            f"decodes (a corrupt header, or a decompression bomb); {example.fix}"
        )
    return header


def split_dataset(examples: list[Example], image_size: int) -> tf.data.Dataset:
    """The preprocessed (image, mask) examples in list order, decoded in parallel."""
    tf = tensorflow()

    def decode(image_path: tf.Tensor, trimap_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf_decode_image(tf.io.read_file(image_path)), tf_decode_trimap(tf.io.read_file(trimap_path))

    paths = tf.data.Dataset.from_tensor_slices(
        ([str(e.image) for e in examples], [str(e.trimap) for e in examples])
    )
    return paths.map(
        lambda image_path, trimap_path: preprocess(*decode(image_path, trimap_path), image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def load_release(
    path: str | Path, *, image_size: int, source: str = "dir", synthetic: bool = False, as_arrays: bool = False
) -> PetSplits:
    """Read, validate and fingerprint a release directory (or its archives) into `PetSplits`.

    The first load of a given content also decodes every file in full (`bench.data.verify`), with
    the decoder its splits will decode with.

    Args:
        path: the release directory, or a directory holding the two release archives.
        image_size: side of the square images and masks.
        source, synthetic: recorded in the provenance (the synthetic generator reuses this loader).
        as_arrays: splits of decoded, resized arrays (Pillow, cached), not tf.data pipelines.
    """
    if not as_arrays:
        tensorflow()  # fails here, in one line, where TensorFlow is missing
    root = resolve_release(path)
    splits = {split: read_split_list(root, split) for split in SPLIT_LISTS}
    train_names = {e.name: e.listed_at for e in splits["train"]}
    for example in splits["test"]:
        if example.name in train_names:
            raise DataError(
                f"{example.listed_at}: {example.name!r} is in both splits "
                f"(also {train_names[example.name]})"
            )
    # Threads overlap file reads and hashing (both release the GIL).
    with ThreadPoolExecutor() as pool:
        digests = {split: list(pool.map(check_example, examples)) for split, examples in splits.items()}
    fingerprint = fingerprint_examples(
        {
            split: [(e.name, *d) for e, d in zip(examples, digests[split], strict=True)]
            for split, examples in splits.items()
        }
    )
    decoder = PILLOW if as_arrays else TENSORFLOW
    verify_examples(
        [e for examples in splits.values() for e in examples],
        [d for split in splits for d in digests[split]],
        fingerprint,
        decoder,
    )
    provenance = Provenance(
        source=source,  # type: ignore[arg-type]
        location=str(root.resolve()),
        train_size=len(splits["train"]),
        test_size=len(splits["test"]),
        fingerprint=fingerprint,
        synthetic=synthetic,
    )
    if as_arrays:
        arrays = cached_splits(
            fingerprint, image_size, f"{decoder.name}-{decoder.version}",
            lambda: {split: decode_split(examples, image_size, decoder) for split, examples in splits.items()},
        )
        return PetSplits(train=arrays["train"], test=arrays["test"], provenance=provenance)
    return PetSplits(
        train=split_dataset(splits["train"], image_size),
        test=split_dataset(splits["test"], image_size),
        provenance=provenance,
    )
