"""A learnable stand-in for CIFAR-10: each class a colour and a pattern, jittered and noisy per image."""

from collections.abc import Callable

import numpy as np

NUM_CLASSES = 10
SIDE = 32  # CIFAR-10 images are 32×32 RGB, stored as 3 planes of 1024 bytes per row


def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, N×3×32×32) of random classes, and their labels."""
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
    masks = np.empty((n, SIDE, SIDE), dtype=bool)
    for k, (_, _, pattern) in enumerate(_CLASSES):
        idx = np.flatnonzero(labels == k)
        masks[idx] = pattern(rng, len(idx))
    colours = np.array([rgb for _, rgb, _ in _CLASSES], dtype=np.float32)
    # Brightness 0.6-1.0 keeps the hue but stops a single pixel value from naming the class.
    fg = (colours[labels] * rng.uniform(0.6, 1.0, (n, 1))).astype(np.int16)
    # A dark grey background (0-80) varies per image and stays darker than the brightest channel of any class.
    bg = np.repeat(rng.integers(0, 81, (n, 1), dtype=np.int16), 3, axis=1)
    images = np.empty((n, 3, SIDE, SIDE), dtype=np.uint8)
    chunk = 4096  # images per step: ~25 MB of int16 scratch, where all 60,000 at once would need ~370 MB
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        # One uniform byte split into two nibbles gives triangular noise in -30..30 (sd ~13): Gaussian-like,
        # at a fraction of the cost of normal draws. It is luminance noise, shared by the three channels.
        raw = rng.integers(0, 256, (hi - lo, 1, SIDE, SIDE), dtype=np.uint8).astype(np.int16)
        noise = ((raw & 15) + (raw >> 4) - 15) * 2
        pixels = np.where(masks[lo:hi, None], fg[lo:hi, :, None, None], bg[lo:hi, :, None, None]) + noise
        np.clip(pixels, 0, 255, out=pixels)
        images[lo:hi] = pixels
    return images, labels


_Pattern = Callable[[np.random.Generator, int], np.ndarray]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.ogrid[0:SIDE, 0:SIDE]
    return y.astype(np.int16)[None], x.astype(np.int16)[None]


def _shift(rng: np.random.Generator, n: int) -> np.ndarray:
    # Patterns repeat every 8 px (4 on, 4 off), so a shift of 0-7 covers every phase.
    return rng.integers(0, 8, (n, 1, 1), dtype=np.int16)


def _stripes(dy: int, dx: int) -> _Pattern:
    def pattern(rng: np.random.Generator, n: int) -> np.ndarray:
        y, x = _grid()
        # +64 keeps the anti-diagonal's x - y non-negative, so // and & see no negative numbers.
        return ((dy * y + dx * x + 64 + _shift(rng, n)) // 4 & 1).astype(bool)

    return pattern


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    y, x = _grid()
    return (((y + _shift(rng, n)) // 4 ^ (x + _shift(rng, n)) // 4) & 1).astype(bool)


def _dots(rng: np.random.Generator, n: int) -> np.ndarray:
    y, x = _grid()
    return ((y + _shift(rng, n)) % 8 < 3) & ((x + _shift(rng, n)) % 8 < 3)  # 3×3 dots on an 8 px grid


def _centred(shape: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> _Pattern:
    def pattern(rng: np.random.Generator, n: int) -> np.ndarray:
        y, x = _grid()
        # The centre wanders ±4 px and the size 7-11 px, so the shape is not one fixed set of pixels.
        cy, cx = rng.integers(12, 21, (2, n, 1, 1), dtype=np.int16)
        size = rng.integers(7, 12, (n, 1, 1), dtype=np.int16)
        return shape(np.abs(y - cy), np.abs(x - cx), size)

    return pattern


# Rings 3 px wide, looked up by squared distance (at most 2 * 31**2 on a 32 px grid): no sqrt per pixel.
_RING_OF_SQUARED_RADIUS = (np.sqrt(np.arange(2 * 31**2 + 1)) // 3 % 2).astype(bool)

_CLASSES: tuple[tuple[str, tuple[int, int, int], _Pattern], ...] = (
    ("red horizontal stripes", (230, 40, 40), _stripes(1, 0)),
    ("orange vertical stripes", (245, 140, 20), _stripes(0, 1)),
    ("yellow diagonal stripes", (235, 225, 40), _stripes(1, 1)),
    ("green anti-diagonal stripes", (40, 190, 60), _stripes(-1, 1)),
    ("cyan checkerboard", (40, 210, 220), _checkerboard),
    ("blue rings", (50, 90, 235), _centred(lambda ay, ax, s: _RING_OF_SQUARED_RADIUS[ay * ay + ax * ax])),
    ("purple disc", (150, 60, 210), _centred(lambda ay, ax, s: ay * ay + ax * ax < s * s)),
    ("pink square", (245, 110, 185), _centred(lambda ay, ax, s: np.maximum(ay, ax) < s)),
    (
        "white cross",
        (240, 240, 240),
        _centred(lambda ay, ax, s: (np.minimum(ay, ax) < 3) & (np.maximum(ay, ax) < s + 3)),
    ),
    ("brown dots", (150, 95, 40), _dots),
)

CLASS_NAMES = tuple(name for name, _, _ in _CLASSES)
