"""Classical (non-learned) segmenters: edge-based versus region-based, as 3-class pet trimaps.

Every method turns an RGB image into a *partition* (an integer label image whose regions are the
candidate pieces of the pet or of the background); one shared rule then picks the foreground from
that partition, and one shared step draws the trimap border band around it. Only the partition
differs between methods, so a comparison of methods compares edge-based with region-based
evidence and nothing else.

Methods (registered with :func:`segmodels.registry.register_classical`, listed by
:func:`segmodels.registry.classical_names`):

* edge-based, edges closed (morphological closing) and hole-filled
  (``scipy.ndimage.binary_fill_holes``); the partition is the connected components of the filled
  mask and of its complement:

  - ``sobel``: Sobel gradient magnitude thresholded with Otsu's rule (Sobel & Feldman 1968;
    Otsu 1979).
  - ``canny``: Canny's detector with hysteresis (Canny, IEEE TPAMI 1986).

* region-based:

  - ``otsu``: global Otsu threshold of the grey image (Otsu, IEEE TSMC 1979); the partition is
    the connected components of both classes.
  - ``watershed``: marker-based watershed (Vincent & Soille, IEEE TPAMI 1991; Meyer's flooding,
    1994) of the Sobel gradient; markers are the connected low-gradient plateaus (gradient below
    Otsu's threshold of the gradient, opened to drop slivers), so each marker is a homogeneous
    area and the flood stops at edges.
  - ``slic``: SLIC superpixels (Achanta et al., IEEE TPAMI 2012) grouped by a region adjacency
    graph on mean Lab colour (adjacent superpixels closer than ``_RAG_MERGE_LAB`` join, as
    ``skimage.graph.cut_threshold`` does).
  - ``felzenszwalb``: graph-based segmentation (Felzenszwalb & Huttenlocher, IJCV 2004).

Foreground rule (``select_foreground``, the same for every method). The pets in Oxford-IIIT Pet
are photographed roughly centred and rarely fill the frame, so two priors from the saliency
literature decide which regions are pet:

* *boundary connectivity* (Zhu et al., "Saliency optimization from robust background detection",
  CVPR 2014): ``b(R) = |R on the image frame| / sqrt(|R|)``. Background regions wrap around the
  frame and have a large ``b``; a pet touching one edge (a dog's chest cut off) has a small one.
  Its background likelihood is turned into a foreground weight ``exp(-b^2 / 2)`` as in the paper.
* *centre prior*: the mean over the region of an isotropic Gaussian centred in the image, with
  standard deviation ``_CENTRE_SIGMA`` of the half-side (in normalised coordinates, so non-square
  images are treated alike).

A region's score is the product of the two; regions scoring above ``_SELECT_THRESHOLD`` are pet.
When none does, the best-scoring region is pet unless it is the whole image (a constant image has
no object). Holes in the union are filled: a pet has no holes at this resolution.

Border band: the trimaps mark a band of "border" (unsure) pixels along the pet's outline. Pixels
whose Euclidean distance to the predicted outline is at most half the band width, on either side,
are border (the real band straddles the outline: 49 % of its pixels are nearer the pet than the
background). The width is ``BORDER_WIDTH_128`` pixels at 128x128 (the benchmark's resolution) and
scales with ``sqrt(H * W) / 128`` at other sizes, as the trimaps' band does when resized.

Class ids are those of :mod:`segmodels.trimap`: 0 = pet, 1 = background, 2 = border.

In the benchmark a method is the model ``classical-<method>`` (architecture ``classical``, the
method in the backbone's place), listed by :func:`list_classical_models` beside the deep models of
``segmodels.list_models()`` (which stays the architecture x backbone product).

Why one module of this size: the six methods share one foreground rule and one trimap step;
the edge-vs-region comparison is fair only while they sit side by side.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import keras
import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph
from skimage import color, feature, filters, measure, morphology, segmentation

from segmodels.registry import (
    CLASSICAL_ARCHITECTURE,
    ClassicalEntry,
    classical_names,
    get_classical,
    register_classical,
)
from segmodels.trimap import BACKGROUND, BORDER, NUM_CLASSES, PET

#: The architecture name of every classical model id: ``classical-<method>`` (the registry's).
ARCHITECTURE = CLASSICAL_ARCHITECTURE

# Measured on the 210 real trimaps of the Oxford-IIIT Pet sample, each resized to 128x128 with
# nearest neighbour: border area / outline length, the outline length being the mean of the
# perimeters (skimage.measure.perimeter) of "pet" and of "pet or border". Median over images 4.63
# (mean 4.83, 10th-90th percentile 3.5-6.5); the median per-pixel thickness (distance to pet +
# distance to background - 1) agrees at 5.0. ``measure_border_width`` re-measures it and
# tests/segmodels/test_classical.py checks this constant against the sample when the sample is present.
BORDER_WIDTH_128 = 4.6

# Chosen on the sample's trainval split only (a coarse grid; the test split is for reporting):
# the selection prior and threshold maximised the mean pet IoU over all six methods, and the
# closing radius is the one step where edge methods are sensitive (Canny pet IoU 0.18 / 0.37 /
# 0.44 / 0.47 for radius 2 / 3 / 4 / 5); 4 closes most outline gaps without turning into a blob.
_CENTRE_SIGMA = 0.5  # of the half-side, normalised coordinates in [-1, 1]
_SELECT_THRESHOLD = 0.15
_CLOSING_RADIUS_128 = 4  # pixels at 128x128, scaled with the image like the border band
# SLIC: compactness 20 keeps superpixels from chasing fur stripes and noise; the Lab merge
# threshold trades leaking across the outline (large) against a fragmented pet (small). Both set
# on trainval (pet IoU 0.39 at compactness 10 / threshold 12, 0.51 here).
_SLIC_COMPACTNESS = 20.0
_RAG_MERGE_LAB = 9.0  # Lab units; about 4 just-noticeable differences


# === Partitions ===


def _grey(image: np.ndarray) -> np.ndarray:
    return color.rgb2gray(image)


def _components(mask: np.ndarray) -> np.ndarray:
    """Connected components of ``mask`` and of its complement, as one label image."""
    inside, n = ndi.label(mask)
    outside, _ = ndi.label(~mask)
    return np.where(mask, inside, outside + n)


def _scaled(pixels_128: float, shape: tuple[int, ...]) -> float:
    """A length set for 128x128 images, at the size of ``shape``."""
    return pixels_128 * float(np.sqrt(shape[0] * shape[1])) / 128.0


def _close_and_fill(edges: np.ndarray) -> np.ndarray:
    # Closing bridges the small gaps an edge detector leaves in an outline; only a closed outline
    # has an inside for binary_fill_holes to fill.
    radius = max(1, round(_scaled(_CLOSING_RADIUS_128, edges.shape)))
    closed = ndi.binary_closing(edges, structure=morphology.disk(radius), border_value=0)
    return ndi.binary_fill_holes(closed)


@register_classical(
    "sobel", family="edge", description="Sobel gradient magnitude, Otsu-thresholded, closed and filled"
)
def _sobel_partition(image: np.ndarray) -> np.ndarray:
    magnitude = filters.sobel(filters.gaussian(_grey(image), sigma=1.0))
    edges = magnitude > filters.threshold_otsu(magnitude) if np.ptp(magnitude) > 0 else np.zeros_like(magnitude, bool)
    return _components(_close_and_fill(edges))


@register_classical("canny", family="edge", description="Canny edges (Canny 1986), closed and filled")
def _canny_partition(image: np.ndarray) -> np.ndarray:
    # sigma=2 smooths away fur texture, which would otherwise dominate the edge map at 128 px.
    edges = feature.canny(_grey(image), sigma=2.0)
    return _components(_close_and_fill(edges))


@register_classical("otsu", family="region", description="Global Otsu threshold (Otsu 1979)")
def _otsu_partition(image: np.ndarray) -> np.ndarray:
    grey = filters.gaussian(_grey(image), sigma=1.0)
    if np.ptp(grey) == 0:  # threshold_otsu of a constant image is the constant: one class
        return np.zeros(grey.shape, np.int32)
    return _components(grey > filters.threshold_otsu(grey))


@register_classical(
    "watershed",
    family="region",
    description="Marker watershed of the gradient, low-gradient markers (Vincent & Soille 1991)",
)
def _watershed_partition(image: np.ndarray) -> np.ndarray:
    gradient = filters.sobel(filters.gaussian(_grey(image), sigma=1.0))
    if np.ptp(gradient) == 0:
        return np.zeros(gradient.shape, np.int32)
    flat = gradient < filters.threshold_otsu(gradient)
    flat = ndi.binary_opening(flat, structure=morphology.disk(2))
    markers, n = ndi.label(flat)
    if n == 0:
        return np.zeros(gradient.shape, np.int32)
    return segmentation.watershed(gradient, markers)


def _merge_by_colour(labels: np.ndarray, lab: np.ndarray, threshold: float) -> np.ndarray:
    """Joins adjacent regions whose mean Lab colours are closer than ``threshold``.

    The semantics of ``skimage.graph.cut_threshold(labels, rag_mean_color(lab, labels), threshold)``
    (drop the graph's heavier edges, keep its connected components); built from numpy and
    ``scipy.sparse.csgraph`` because ``rag_mean_color`` alone takes ~50 ms at 128x128.
    """
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(lab.shape[:2])
    n = int(labels.max()) + 1
    counts = np.bincount(labels.ravel(), minlength=n)[:, None]
    means = np.stack([np.bincount(labels.ravel(), lab[..., c].ravel(), n) for c in range(3)], 1) / counts
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
        ]
    )
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    keep = pairs[np.linalg.norm(means[pairs[:, 0]] - means[pairs[:, 1]], axis=1) < threshold]
    adjacency = sparse.coo_matrix((np.ones(len(keep)), (keep[:, 0], keep[:, 1])), shape=(n, n))
    _, merged = csgraph.connected_components(adjacency, directed=False)
    return merged[labels]


@register_classical(
    "slic", family="region", description="SLIC superpixels (Achanta et al. 2012) merged by colour"
)
def _slic_partition(image: np.ndarray) -> np.ndarray:
    # ~100 superpixels of ~13x13 px at 128x128: small enough to follow a pet's outline.
    superpixels = segmentation.slic(
        image, n_segments=100, compactness=_SLIC_COMPACTNESS, start_label=1, convert2lab=True
    )
    return _merge_by_colour(superpixels, color.rgb2lab(image), _RAG_MERGE_LAB)


@register_classical(
    "felzenszwalb", family="region", description="Graph-based segmentation (Felzenszwalb & Huttenlocher 2004)"
)
def _felzenszwalb_partition(image: np.ndarray) -> np.ndarray:
    # scale is in the paper's units for a 128 px image; min_size drops fur-texture specks.
    return segmentation.felzenszwalb(image, scale=200.0, sigma=0.8, min_size=50)


def get_method(method: str) -> ClassicalEntry:
    """The method called ``method``: :func:`segmodels.registry.get_classical`.

    Raises:
        UnknownNameError: An unknown name (lists the known ones, suggests the nearest).
    """
    return get_classical(method)


def list_classical_models(pattern: str = "*") -> list[str]:
    """The ids ``classical-<method>`` matching a shell-style ``pattern``, sorted.

    >>> list_classical_models("classical-s*")
    ['classical-slic', 'classical-sobel']
    """
    return fnmatch.filter([f"{ARCHITECTURE}-{m}" for m in classical_names()], pattern)


# === Shared foreground rule and border band ===


def select_foreground(labels: np.ndarray) -> np.ndarray:
    """The pet among the regions of ``labels``, by boundary connectivity and a centre prior.

    Args:
        labels: ``(H, W)`` integer label image; each distinct value is one candidate region.

    Returns:
        ``(H, W)`` bool mask, the union of the selected regions with its holes filled.
    """
    h, w = labels.shape
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(h, w)
    area = np.bincount(inverse.ravel()).astype(np.float64)
    frame = np.ones((h, w), bool)
    frame[1:-1, 1:-1] = False
    contact = np.bincount(inverse[frame], minlength=area.size)
    connectivity = contact / np.sqrt(area)
    v, u = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    prior = np.exp(-(u**2 + v**2) / (2 * _CENTRE_SIGMA**2))
    centre = np.bincount(inverse.ravel(), weights=prior.ravel(), minlength=area.size) / area
    score = centre * np.exp(-(connectivity**2) / 2)
    chosen = score > _SELECT_THRESHOLD
    if not chosen.any() and area.size > 1:
        chosen[np.argmax(score)] = True
    return ndi.binary_fill_holes(chosen[inverse])


def border_width(shape: tuple[int, int]) -> float:
    """The border band's width in pixels for an image of ``shape`` (``BORDER_WIDTH_128`` at 128x128)."""
    return _scaled(BORDER_WIDTH_128, shape)


def to_trimap(fg: np.ndarray) -> np.ndarray:
    """Foreground mask -> ``uint8`` trimap: pet 0, background 1, border 2 within half the band of the outline."""
    trimap = np.where(fg, PET, BACKGROUND).astype(np.uint8)
    if fg.all() or not fg.any():
        return trimap  # no outline, no band
    half = border_width(fg.shape) / 2
    # Distances to the nearest pixel of the other side: 1 next to the outline on either side.
    near = np.where(fg, ndi.distance_transform_edt(fg), ndi.distance_transform_edt(~fg)) <= half
    trimap[near] = BORDER
    return trimap


def measure_border_width(trimap: np.ndarray) -> float:
    """Border area / outline length of a trimap (0 pet, 1 background, 2 border), in pixels.

    The outline length is the mean of the perimeters of "pet" and of "pet or border", i.e. of the
    band's two edges. Used on the real trimaps to set ``BORDER_WIDTH_128`` and on ours to check it.
    """
    pet = trimap == PET
    border = trimap == BORDER
    length = 0.5 * (measure.perimeter(pet) + measure.perimeter(pet | border))
    return float(border.sum() / length) if length > 0 else 0.0


# === Public API ===


def _as_float_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {image.shape}.")
    if image.dtype == np.uint8:
        # float32 both ways, so uint8 x and float x / 255 reach the methods bit-identical.
        return image.astype(np.float32) / np.float32(255)
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def foreground(image: np.ndarray, method: str) -> np.ndarray:
    """The pet mask, before the border band.

    Args:
        image: ``(H, W, 3)`` RGB, float in [0, 1] or ``uint8``.
        method: A registered method, e.g. ``"canny"``.

    Returns:
        ``(H, W)`` bool mask.
    """
    spec = get_method(method)
    return select_foreground(spec.partition(_as_float_image(image)))


def segment(image: np.ndarray, method: str) -> np.ndarray:
    """``(H, W, 3)`` RGB (float in [0, 1] or ``uint8``) -> ``(H, W)`` ``uint8`` trimap in {0, 1, 2}."""
    return to_trimap(foreground(image, method))


# === Keras wrapper ===


@keras.saving.register_keras_serializable(package="segmodels")
class ClassicalSegmenter(keras.layers.Layer):
    """A classical method as a weightless Keras layer: images -> one-hot "logits".

    The output is exactly one-hot (float32), so ``argmax`` is ``segment``'s mask and the harness
    evaluates and times a classical method as it does a network. It runs on the CPU, one image at
    a time, called from the backend's graph: ``tf.numpy_function`` on TensorFlow,
    ``jax.pure_callback`` on JAX (inside a jitted function too), directly on PyTorch (eager).

    Args:
        method: A registered method, e.g. ``"canny"``.
    """

    def __init__(self, method: str, **kwargs: Any) -> None:
        kwargs["trainable"] = False  # nothing to train; also what a round-tripped config says
        super().__init__(**kwargs)
        self.method = get_method(method).name

    def _segment_batch(self, images: np.ndarray) -> np.ndarray:
        masks = np.zeros(images.shape[:3], np.uint8)  # also the answer for an empty batch
        for i, image in enumerate(images):
            masks[i] = segment(image, self.method)
        return np.eye(NUM_CLASSES, dtype=np.float32)[masks]

    def call(self, images: Any) -> Any:
        backend = keras.backend.backend()
        images = keras.ops.cast(images, "float32")
        if backend == "tensorflow":
            import tensorflow as tf  # lazy: the TensorFlow backend only

            onehot = tf.numpy_function(self._segment_batch, [images], tf.float32, stateful=False)
            onehot.set_shape(images.shape[:-1].concatenate([NUM_CLASSES]))
            return onehot
        if backend == "jax":
            import jax  # lazy: the JAX backend only

            shape = jax.ShapeDtypeStruct((*images.shape[:-1], NUM_CLASSES), "float32")
            return jax.pure_callback(lambda x: self._segment_batch(np.asarray(x)), shape, images)
        return keras.ops.convert_to_tensor(self._segment_batch(keras.ops.convert_to_numpy(images)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], NUM_CLASSES)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "method": self.method}


def build_classical_model(
    method: str, input_shape: tuple[int, int, int] = (128, 128, 3), num_classes: int = NUM_CLASSES
) -> keras.Model:
    """A ``keras.Model`` named ``"classical-<method>"`` (its model id) with no parameters.

    Args:
        method: A registered method, e.g. ``"canny"``.
        input_shape: ``(height, width, 3)``; any size works.
        num_classes: Must be 3 (pet, background, border): the methods only produce trimaps.

    Returns:
        ``images [B, H, W, 3] float in [0, 1] -> one-hot [B, H, W, 3] float32``.

    Raises:
        UnknownNameError: An unknown method (lists the known ones).
        ValueError: ``num_classes != 3`` or a bad shape.
    """
    spec = get_method(method)
    if num_classes != NUM_CLASSES:
        raise ValueError(f"Classical methods produce 3-class trimaps; num_classes must be 3, got {num_classes!r}.")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {tuple(input_shape)}.")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    outputs = ClassicalSegmenter(spec.name, name=f"classical_{spec.name}_segmenter")(inputs)
    return keras.Model(inputs, outputs, name=f"{ARCHITECTURE}-{spec.name}")
