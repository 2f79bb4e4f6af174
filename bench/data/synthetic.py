"""The `synthetic` source: generated pet-like scenes in the release layout, the offline default.

Each scene is a cat- or dog-shaped animal (body, head, ears, legs, tail; or a head-and-shoulders
portrait, as many of the real photos are) with fur-like texture (grain along the body, tabby
stripes, patches or darker points), on a textured two-tone room with clutter, slightly blurred,
noisy and JPEG-compressed. Its trimap is 1 on the animal, 2 on the background and 3 on a band along
the outline, as in the real trimaps: there the band is ~3% of the image's long side wide (median 15
px at the originals' ~500 px; 10th-90th percentile 9-21 px, measured on the 210-image real
sample, as band area over mean edge length); the generated bands measure 0.029 (0.019-0.041), and
they waver along the outline as a hand-drawn stroke does.

Everything is drawn from `numpy.random.default_rng((seed, split, index))`, so a scene does not
depend on how many others are generated, and the same seed gives byte-identical files (for a given
Pillow build). The set is written to the cache atomically and read back by the `dir` loader, so it
goes through exactly the code path of the real release.

Why one module of this size: drawing one scene (animal, fur, face, background, trimap) is one
procedure whose parts are tuned against each other and against the real trimaps.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from bench.data.cache import atomic_directory, cache_root, discard_directory
from bench.data.errors import DataError, SourceUnavailableError
from bench.data.pipeline import PetSplits
from bench.data.release import IMAGES_DIR, SPLIT_LISTS, TRIMAPS_DIR, is_release_dir, load_release

logger = logging.getLogger(__name__)

# Bump when the drawing changes: the cache key includes it, so old sets are not reused.
GENERATOR_VERSION = 2
# Nominal band width / long side (mean, sd, min, max), set so that the band measured like the real
# ones (area over mean edge length) has their median, ~0.030 of the long side.
BORDER_FRACTION = (0.035, 0.006, 0.022, 0.05)

# List-file columns as in the release: <name> <class 1-37> <species 1=cat 2=dog> <breed id>.
SPECIES = {"cat": ("synthetic_cat", 1, 1, 1), "dog": ("synthetic_dog", 2, 2, 1)}

FUR_COLORS = np.array(
    [
        (205, 125, 60),  # ginger
        (120, 80, 50),  # brown
        (35, 30, 30),  # black
        (128, 128, 134),  # grey
        (226, 205, 170),  # cream
        (236, 234, 228),  # white
        (172, 132, 90),  # tan
        (160, 150, 140),  # silver
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Image sides are drawn uniformly from [min_size, max_size]."""

    seed: int = 0
    num_train: int = 200
    num_test: int = 120
    min_size: int = 160
    max_size: int = 256

    def __post_init__(self) -> None:
        if self.num_train < 1 or self.num_test < 1:
            raise ValueError(f"both splits need examples, got {self.num_train} / {self.num_test}")
        if not 32 <= self.min_size <= self.max_size:
            raise ValueError(f"need 32 <= min_size <= max_size, got {self.min_size}, {self.max_size}")

    @property
    def key(self) -> str:
        """The cache directory name: every input of the generation, and its version."""
        return (
            f"v{GENERATOR_VERSION}-seed{self.seed}-{self.num_train}+{self.num_test}"
            f"-{self.min_size}to{self.max_size}px"
        )


def load_synthetic(config: SyntheticConfig, *, image_size: int, as_arrays: bool = False) -> PetSplits:
    """Generate the set into the cache if it is not there yet, then read it with the `dir` loader.

    A damaged set (a file cut short or changed in the cache) is generated again: it is derived
    data, and the advice the `dir` loader gives for a damaged release does not apply to it.
    With `as_arrays`, the set's JPEGs are decoded by Pillow into cached arrays (`bench.data.arrays`).
    """
    root = ensure_synthetic(config)
    try:
        splits = load_release(root, image_size=image_size, source="synthetic", synthetic=True, as_arrays=as_arrays)
    except SourceUnavailableError:
        raise  # the path cannot be had here (no TensorFlow for tf.data): nothing is damaged
    except DataError as error:
        logger.warning("The synthetic set in the cache is damaged (%s); generating it again", _problem_only(error))
        discard_directory(root)
        root = ensure_synthetic(config)
        splits = load_release(root, image_size=image_size, source="synthetic", synthetic=True, as_arrays=as_arrays)
    logger.warning("Using %s", splits.provenance.describe())
    return splits


def _problem_only(error: DataError) -> str:
    """A loader's message without the fix it suggests for a real release (which is re-downloading it)."""
    return re.sub(r"; re-download/re-extract the release.*$", "", str(error), flags=re.DOTALL)


def ensure_synthetic(config: SyntheticConfig, root: Path | None = None) -> Path:
    """The directory holding `config`'s set, generating it (atomically) if absent."""
    final = (root or cache_root() / "pets-synthetic") / config.key
    if is_release_dir(final):
        return final
    logger.info("Generating synthetic Oxford-IIIT Pet stand-in into %s", final)
    with atomic_directory(final) as tmp:
        write_release(tmp, config)
    return final


def write_release(root: Path, config: SyntheticConfig) -> None:
    """Write `config`'s scenes into `root` in the release layout."""
    (root / IMAGES_DIR).mkdir(parents=True)
    (root / TRIMAPS_DIR).mkdir(parents=True)
    index = 0
    for split_id, (split, count) in enumerate((("train", config.num_train), ("test", config.num_test))):
        lines = []
        for i in range(count):
            index += 1  # names are unique across splits, as in the release
            rng = np.random.default_rng((config.seed, split_id, i))
            height, width = rng.integers(config.min_size, config.max_size + 1, size=2)
            species = "cat" if rng.random() < 0.5 else "dog"
            prefix, class_id, species_id, breed_id = SPECIES[species]
            name = f"{prefix}_{index}"
            image, trimap = render_scene(rng, int(height), int(width), species=species)
            Image.fromarray(image).save(
                root / IMAGES_DIR / f"{name}.jpg", quality=int(rng.integers(85, 96))
            )
            Image.fromarray(trimap).save(root / TRIMAPS_DIR / f"{name}.png")
            lines.append(f"{name} {class_id} {species_id} {breed_id}\n")
        (root / SPLIT_LISTS[split]).write_text("".join(lines), encoding="utf-8")


# === Scene ===


def render_scene(
    rng: np.random.Generator, height: int, width: int, *, species: str = "cat"
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: uint8 RGB image [H, W, 3] and uint8 trimap [H, W] in {1, 2, 3}."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shape, head = _animal_sdf(rng, xx, yy, species)
    inside = shape < 0
    if inside.sum() < 0.02 * height * width:  # drawn mostly out of frame: keep the pet visible
        shape = shape - float(np.sort(shape, axis=None)[int(0.05 * height * width)])
        inside = shape < 0
    # Exact signed distance to the rasterized outline (negative inside), in pixels.
    distance = ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)
    distance = distance.astype(np.float32)

    background = _background(rng, xx, yy)
    fur = _fur(rng, xx, yy, distance, species)
    _paint_face(rng, fur, xx, yy, head, species)
    alpha = np.clip(0.5 - shape, 0.0, 1.0)[..., None]  # anti-aliased edge from the smooth field
    image = alpha * fur + (1.0 - alpha) * background
    blurred = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9))
    )
    sensor_noise = rng.normal(0, rng.uniform(1.5, 4.0), image.shape).astype(np.float32)
    image = np.clip(np.asarray(blurred, np.float32) + sensor_noise, 0, 255).astype(np.uint8)

    mean, sd, low, high = BORDER_FRACTION
    band_width = np.clip(rng.normal(mean, sd), low, high) * max(height, width)
    # A hand-drawn stroke: its width wavers by up to ~35% along the outline.
    half_width = 0.5 * band_width * (1.0 + 0.35 * _noise(rng, height, width, cells=4, octaves=2))
    trimap = np.where(inside, 1, 2).astype(np.uint8)
    # Pixels next to the outline are 1 px from it: a band of at least that always separates the two.
    trimap[np.abs(distance) <= np.maximum(half_width, 1.0)] = 3
    return image, trimap


@dataclass(frozen=True)
class _Head:
    x: float
    y: float
    radius: float
    facing: float  # +1 looks right, -1 left


def _animal_sdf(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, species: str
) -> tuple[np.ndarray, _Head]:
    """Signed distance-like field of the animal's silhouette (negative inside, in pixels), and its head."""
    height, width = xx.shape
    s = float(min(height, width))
    face = 1.0 if rng.random() < 0.5 else -1.0  # which way the animal looks
    portrait = rng.random() < 0.35  # head and shoulders, cut off by the frame, as in many photos
    k = 0.06 * s  # smooth-union radius: organic joints between parts

    if portrait:
        r_head = s * rng.uniform(0.2, 0.3)
        hx, hy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.5)
        body = _ellipse(xx, yy, hx - face * 0.3 * r_head, hy + 2.0 * r_head,
                        r_head * rng.uniform(1.6, 2.1), r_head * rng.uniform(1.3, 1.7), 0.0)
        legs = []
        tail = None
    else:
        a = s * rng.uniform(0.24, 0.36)  # half body length
        b = a * rng.uniform(0.42, 0.6)
        cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.45, 0.62)
        theta = rng.uniform(-0.25, 0.25)
        body = _ellipse(xx, yy, cx, cy, a, b, theta)
        r_head = b * rng.uniform(0.8, 1.05)
        hx = cx + face * a * rng.uniform(0.75, 0.95)
        hy = cy - b * rng.uniform(0.6, 1.1) + face * a * math.sin(theta)
        leg_len = b * rng.uniform(0.9, 1.5)
        leg_r = b * rng.uniform(0.14, 0.2)
        legs = []
        for offset in (-0.65, -0.4, 0.45, 0.7):
            lx = cx + offset * a + rng.normal(0, 0.04 * a)
            ly = cy + offset * a * math.sin(theta) + 0.4 * b
            legs.append(_capsule(xx, yy, (lx, ly), (lx + rng.normal(0, 0.15 * leg_r), ly + leg_len), leg_r))
        # Tail: three segments from the rump, curling up (cats) or short and thick (dogs).
        tail_r = b * (0.1 if species == "cat" else 0.16)
        px, py = cx - face * a * 0.9, cy - 0.2 * b
        angle = math.atan2(-1.0, -face) + rng.uniform(-0.6, 0.6)
        length = a * (0.45 if species == "cat" else 0.25)
        tail = None
        for _ in range(3):
            qx, qy = px + length * math.cos(angle), py + length * math.sin(angle)
            segment = _capsule(xx, yy, (px, py), (qx, qy), tail_r)
            tail = segment if tail is None else np.minimum(tail, segment)
            px, py, angle = qx, qy, angle + face * rng.uniform(-0.2, 0.7)

    head = _ellipse(xx, yy, hx, hy, r_head * rng.uniform(0.95, 1.1), r_head * rng.uniform(0.85, 1.0), 0.0)
    parts = [head]
    if species == "dog":  # a snout in front of the head
        parts.append(_ellipse(xx, yy, hx + face * 0.75 * r_head, hy + 0.25 * r_head,
                              0.55 * r_head, 0.4 * r_head, face * 0.2))
    ears = []
    pointed = species == "cat" or rng.random() < 0.4
    for side in (-1.0, 1.0):
        base = hx + side * 0.55 * r_head
        if pointed:
            tip_x = base + side * rng.uniform(0.1, 0.35) * r_head
            tip_y = hy - r_head * rng.uniform(1.3, 1.7)
            ears.append(_triangle(xx, yy, (base - 0.38 * r_head, hy - 0.5 * r_head),
                                  (base + 0.38 * r_head, hy - 0.5 * r_head), (tip_x, tip_y)))
        else:  # floppy ears hanging beside the head
            ears.append(_ellipse(xx, yy, hx + side * 0.85 * r_head, hy + 0.15 * r_head,
                                 0.28 * r_head, 0.7 * r_head, side * 0.25))

    silhouette = _smooth_min(body, head, k)
    for part in parts[1:] + legs:
        silhouette = _smooth_min(silhouette, part, 0.5 * k)
    for part in ears + ([tail] if tail is not None else []):
        silhouette = _smooth_min(silhouette, part, 0.25 * k)
    return silhouette, _Head(hx, hy, r_head, face)


def _paint_face(
    rng: np.random.Generator, fur: np.ndarray, xx: np.ndarray, yy: np.ndarray, head: _Head, species: str
) -> None:
    """Paint eyes and a nose onto `fur` [H, W, 3], in place, within the head's box."""
    r, f = head.radius, head.facing
    height, width = xx.shape
    rows = slice(max(0, int(head.y - r)), max(0, min(height, int(head.y + r) + 1)))
    cols = slice(max(0, int(head.x - 1.6 * r)), max(0, min(width, int(head.x + 1.6 * r) + 1)))
    xx, yy, face = xx[rows, cols], yy[rows, cols], fur[rows, cols]
    iris = np.array((150, 160, 60) if species == "cat" else (90, 60, 30), np.float32)
    iris = iris * rng.uniform(0.7, 1.2)
    eye_r = r * (0.13 if species == "cat" else 0.1)
    slit = 2.5 if species == "cat" else 1.0  # cats' pupils are narrow
    for eye_x in (head.x + f * 0.05 * r, head.x + f * 0.5 * r):
        eye_y = head.y - 0.12 * r
        # Anti-aliased discs: 1 inside, 0 outside, a one-pixel ramp between.
        eye = np.clip(eye_r - np.hypot(xx - eye_x, (yy - eye_y) * 1.3), 0.0, 1.0)[..., None]
        pupil = np.clip(0.5 * eye_r - np.hypot((xx - eye_x) * slit, yy - eye_y), 0.0, 1.0)[..., None]
        face[:] = (1 - eye) * face + eye * ((1 - pupil) * iris + pupil * 15.0)
    nose_x = head.x + f * (0.75 if species == "cat" else 1.25) * r
    nose_y = head.y + (0.25 if species == "cat" else 0.2) * r
    nose = np.clip(0.12 * r - np.hypot(xx - nose_x, (yy - nose_y) * 1.4), 0.0, 1.0)[..., None]
    face[:] = (1 - nose) * face + nose * np.array((60, 40, 40) if species == "cat" else (25, 20, 20))


def _fur(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, distance: np.ndarray, species: str
) -> np.ndarray:
    """Fur colour [H, W, 3]: base colour, pattern, grain along the body, shading towards the outline."""
    height, width = xx.shape
    base, second = FUR_COLORS[rng.choice(len(FUR_COLORS), size=2, replace=False)]
    base = base * rng.uniform(0.85, 1.1)
    pattern = rng.choice(["solid", "tabby", "patches", "points"], p=[0.3, 0.3, 0.25, 0.15])
    weight = np.zeros((height, width), np.float32)
    if pattern == "tabby":
        period = rng.uniform(0.05, 0.1) * min(height, width)
        warp = 2.5 * _noise(rng, height, width, cells=5, octaves=2)
        weight = (np.sin(2 * np.pi * xx / period + warp) > 0.3).astype(np.float32) * 0.7
        second = base * 0.45
    elif pattern == "patches":
        weight = (_noise(rng, height, width, cells=4, octaves=3) > 0.2).astype(np.float32)
    elif pattern == "points":  # darker extremities (Siamese-like): far from the body's core
        core = np.clip(-distance / (0.12 * min(height, width)), 0.0, 1.0)
        weight = 1.0 - core
        second = np.array((70, 50, 40), np.float32)
    weight = ndimage.gaussian_filter(weight, 1.0)[..., None]
    color = (1.0 - weight) * base + weight * second

    # Grain: noise stretched along one direction (hairs), plus fine speckle.
    streaks = _noise(rng, height, width, cells=(max(4, height // 3), max(2, width // 24)), octaves=2)
    if rng.random() < 0.5:
        streaks = _noise(rng, height, width, cells=(max(2, height // 24), max(4, width // 3)), octaves=2)
    grain = 1.0 + 0.12 * streaks + 0.06 * rng.standard_normal((height, width)).astype(np.float32)
    # Rounded look: darker near the outline, lit from one side.
    rim = np.clip(-distance / (0.08 * min(height, width)), 0.0, 1.0)
    light = 1.0 + 0.15 * (xx / width - 0.5) * (1 if rng.random() < 0.5 else -1)
    shade = (0.7 + 0.3 * rim) * light * grain
    fur = color * shade[..., None]
    if species == "cat" and rng.random() < 0.3:  # some cats are much darker or lighter overall
        fur = fur * rng.uniform(0.6, 1.2)
    return fur


def _background(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """A room: wall and floor of muted colours, textured, with blurred clutter and uneven light."""
    height, width = xx.shape
    wall, floor = _muted_colors(rng, 2)
    horizon = height * rng.uniform(0.3, 0.8) + (xx - width / 2) * rng.uniform(-0.3, 0.3)
    is_floor = (yy > horizon)[..., None]
    image = np.where(is_floor, floor, wall).astype(np.float32)
    texture = 1.0 + 0.12 * _noise(rng, height, width, cells=6, octaves=4)
    if rng.random() < 0.5:  # boards, carpet rows or wallpaper stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.04, 0.15) * min(height, width)
        texture += 0.06 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    image *= texture[..., None]
    for color in _muted_colors(rng, int(rng.integers(2, 7)), saturation=0.6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.3) * height
        if rng.random() < 0.5:
            blob = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0
        else:
            blob = (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
        image[blob] = color * rng.uniform(0.9, 1.1, 3)
    # Out of focus behind the pet, as in most photos: one blur for the whole room.
    focus = ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5))
    image = np.asarray(Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(focus), np.float32)
    image *= (1.0 + 0.05 * _noise(rng, height, width, cells=12, octaves=2))[..., None]
    vignette = 1.0 - 0.25 * (((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * rng.uniform(0.5, 2))
    return image * vignette[..., None]


def _muted_colors(rng: np.random.Generator, n: int, saturation: float = 0.35) -> np.ndarray:
    """n RGB colours (float, 0-255) of moderate saturation, from HSV."""
    hue = rng.uniform(0, 1, n)
    sat = rng.uniform(0.05, saturation, n)
    val = rng.uniform(0.3, 0.95, n)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = np.choose(i, [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)])
    return (np.stack(rgb, axis=-1) * 255).astype(np.float32).reshape(n, 3)


# === Geometry and noise ===


def _noise(
    rng: np.random.Generator, height: int, width: int, *, cells: int | tuple[int, int], octaves: int
) -> np.ndarray:
    """Smooth fractal noise in about [-1, 1]: random grids upsampled bicubically, halving each octave."""
    rows, cols = (cells, cells) if isinstance(cells, int) else cells
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.uniform(-1, 1, (max(rows, 2), max(cols, 2))).astype(np.float32)
        total += amplitude * np.asarray(
            Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        )
        norm += amplitude
        amplitude *= 0.5
        rows, cols = min(rows * 2, height), min(cols * 2, width)
    return np.clip(total / norm, -1.0, 1.0)


def _ellipse(xx, yy, cx, cy, a, b, theta) -> np.ndarray:
    """First-order signed distance to an ellipse with semi-axes a, b rotated by theta."""
    c, s = math.cos(theta), math.sin(theta)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) + 1e-6
    gradient = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / rho + 1e-6
    return (rho - 1.0) / gradient


def _capsule(xx, yy, p0, p1, radius) -> np.ndarray:
    """Signed distance to a segment p0-p1 thickened by radius."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
    return np.hypot(xx - x0 - t * dx, yy - y0 - t * dy) - radius


def _triangle(xx, yy, *corners) -> np.ndarray:
    """Signed distance-like field of a triangle (exact inside, a lower bound outside)."""
    cx, cy = np.mean(corners, axis=0)
    field = None
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        nx, ny = y1 - y0, x0 - x1  # a normal of the edge...
        if nx * (cx - x0) + ny * (cy - y0) > 0:  # ...pointing away from the inside
            nx, ny = -nx, -ny
        edge = ((xx - x0) * nx + (yy - y0) * ny) / (math.hypot(nx, ny) + 1e-6)
        field = edge if field is None else np.maximum(field, edge)
    return field


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two distance fields, rounded over a radius k where they meet."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)
