"""Oxford-IIIT Pet for the benchmark: TFDS, the release on disk, or a synthetic stand-in.

    splits = load_pets("auto", image_size=128)          # PetSplits(train, test, provenance)
    train = train_batches(splits.train, batch_size=64, seed=0)
    test = test_batches(splits.test, batch_size=64)
    record = splits.provenance.as_dict()                  # stored with every result

    splits = load_pets("auto", image_size=128, as_arrays=True)   # NumPy arrays, any Keras backend
    train = train_batches(splits.train, batch_size=64, seed=0)    # NumPy (images, masks) batches

Importing this package does not import TensorFlow; only the tf.data path and the tfds source do.
"""

from bench.data.arrays import ArraySplit
from bench.data.errors import DataError, SourceUnavailableError
from bench.data.pipeline import PetSplits, preprocess, test_batches, train_batches
from bench.data.provenance import Provenance
from bench.data.sources import PETS_DIR_ENV, Source, load_pets, parse_source
from bench.data.synthetic import SyntheticConfig

__all__ = [
    "PETS_DIR_ENV",
    "ArraySplit",
    "DataError",
    "PetSplits",
    "Provenance",
    "Source",
    "SourceUnavailableError",
    "SyntheticConfig",
    "load_pets",
    "parse_source",
    "preprocess",
    "test_batches",
    "train_batches",
]
