"""Images sent to a trained job: checked before they are decoded, then reduced to 32×32 RGB as CIFAR-10's are.

The API does this itself with Pillow (no numpy or torch): what the inference process receives is always 3,072
bytes, however large the upload was.
"""

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

# 5 MiB: a phone camera's JPEG is 2–4 MB; a CIFAR-sized picture is a few kB.
MAX_BYTES = 5 * 1024 * 1024
# 40 megapixels: more than any camera people photograph with; a PNG that claims more is more likely a decompression
# bomb (a few kB that inflate to gigabytes) than a photo. Checked from the header, before anything is decoded.
MAX_PIXELS = 40_000_000
# How a PNG and a JPEG begin: an upload that does not is not one (415); one that does but cannot be read is broken
# (422). Each is opened as the kind its first bytes say, and as nothing else.
SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}
# CIFAR-10's images are 32×32.
SIDE = 32
# Transparent parts are shown on white, as a browser shows them on a page.
BACKGROUND = (255, 255, 255)


def check_size(data: bytes) -> None:
    """PayloadTooLarge for an upload over MAX_BYTES."""
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"the image is over {MAX_BYTES // (1024 * 1024)} MiB; send a smaller one")


def to_cifar(data: bytes) -> bytes:
    """The PNG or JPEG in `data` as 32×32 RGB, 3,072 bytes row by row: cut to a centred square, then reduced by
    averaging (each pixel the mean of the area it covers).

    UnsupportedMediaType for what does not begin as a PNG or JPEG does; InvalidImage for one over MAX_PIXELS, one
    without pixels, and one that cannot be read (truncated, corrupt): whatever Pillow raises is the upload's fault.
    """
    check_size(data)
    kind = next((name for name, signature in SIGNATURES.items() if data.startswith(signature)), None)
    if kind is None:
        raise UnsupportedMediaType("the upload is not a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check (at ~89 MP) warns; here that is an answer, not a log line.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=(kind,))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(f"the image has more than {MAX_PIXELS / 1e6:g} megapixels") from None
    # Pillow reports a broken file with many exception types (OSError, SyntaxError, ValueError, struct.error, …).
    except Exception as exc:
        raise _broken(kind, exc) from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidImage(
                f"the image is {width}×{height} = {width * height / 1e6:.1f} megapixels; "
                f"at most {MAX_PIXELS / 1e6:g} are accepted"
            )
        if not width or not height:
            raise InvalidImage(f"the {kind} image is {width}×{height}: it has no pixels")
        try:
            # A JPEG can be decoded at 1/2 to 1/8 of its size when it will be reduced anyway (a PNG cannot).
            image.draft("RGB", (SIDE, SIDE))
            rgb = _rgb(ImageOps.exif_transpose(image))
        except Exception as exc:
            raise _broken(kind, exc) from None
    square = ImageOps.fit(rgb, (SIDE, SIDE), method=Image.Resampling.BOX)
    return square.tobytes()


def _broken(kind: str, exc: Exception) -> InvalidImage:
    # Pillow's "cannot identify" names the in-memory file object, which says nothing to the client.
    reason = (
        "its header is truncated or corrupt"
        if isinstance(exc, UnidentifiedImageError)
        else str(exc) or type(exc).__name__
    )
    return InvalidImage(f"the {kind} image could not be read ({reason}); is the file whole?")


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba).convert("RGB")
    return image.convert("RGB")
