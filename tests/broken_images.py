"""A generated corpus of broken image files, each with the answer `POST /jobs/{id}/predict` owes it: truncations of
a valid JPEG, PNG, GIF and WebP at many offsets, PNG chunks that expand past Pillow's limits, bad CRCs, zero and huge
declared sizes, and headers whose fields make no sense.

An upload that starts with a PNG's or JPEG's signature but cannot be read is a broken image (422 `invalid_image`);
anything else is not an image the service takes (415). Each file is broken by construction (pixel rows missing, a
field out of its range, a checksum wrong): none is a picture some decoder could still show whole.
"""

import io
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Every offset through the headers, where each field's parser meets the end in turn; then evenly spread ones.
HEADER_BYTES, SPREAD = 160, 40
# Cut here or earlier, a tenth or more of the pixel data is gone: no decoder can produce every row.
MOST = 0.9
# Pillow's limit on one decompressed text or colour-profile chunk is 1 MiB; on all of them together, 64 MiB.
OVER_ONE_CHUNK = 2 * 1024 * 1024
OVER_ALL_CHUNKS, CHUNKS = 1024 * 1024 - 1, 70


@dataclass(frozen=True)
class Broken:
    name: str
    data: bytes
    status: int  # what the service must answer: 422 for a broken PNG or JPEG, 415 for anything else

    @property
    def code(self) -> str:
        return "invalid_image" if self.status == 422 else "unsupported_media_type"


def picture(fmt: str, **options: object) -> bytes:
    """A 48×40 picture of random pixels (so that it compresses poorly and its data spans many bytes) as `fmt`."""
    rng = random.Random(0)
    image = Image.new("RGB", (48, 40))
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48 * 40)])
    if options.pop("palette", False):
        image = image.quantize(16)
        options["transparency"] = 3
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """A PNG chunk; `crc` replaces the right checksum."""
    right = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", right if crc is None else crc)


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (kind, data), in order."""
    out, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        out.append((png[at + 4 : at + 8], png[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def rebuild(parts: list[tuple[bytes, bytes]], insert: dict[bytes, list[bytes]] | None = None) -> bytes:
    """A PNG of `parts`, with `insert[kind]`'s ready-made chunks placed before the first chunk of that kind."""
    out, pending = [PNG_SIGNATURE], dict(insert or {})
    for kind, data in parts:
        out += pending.pop(kind, [])
        out.append(chunk(kind, data))
    return b"".join(out)


def png_with_header(
    width: int, height: int, depth: int = 8, colour: int = 2, method: int = 0, interlace: int = 0
) -> bytes:
    """The corpus's PNG with its IHDR's fields replaced (and the checksum made right for them)."""
    parts = chunks(picture("PNG"))
    parts[0] = (b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
    return rebuild(parts)


def truncations() -> Iterator[Broken]:
    originals = {
        "jpeg": picture("JPEG", quality=90),
        "progressive jpeg": picture("JPEG", progressive=True),
        "png": picture("PNG"),
        "interlaced palette png": picture("PNG", palette=True, interlace=1),
        "gif": picture("GIF"),
        "webp": picture("WEBP"),
    }
    for name, whole in originals.items():
        last = int(len(whole) * MOST)
        cuts = {*range(min(HEADER_BYTES, last + 1)), *range(0, last + 1, max(1, last // SPREAD)), last}
        for cut in sorted(cuts):
            data = whole[:cut]
            readable = data.startswith(PNG_SIGNATURE) or data.startswith(JPEG_SIGNATURE)
            yield Broken(f"{name} cut at {cut} of {len(whole)}", data, 422 if readable else 415)


def oversized_chunks() -> Iterator[Broken]:
    parts = chunks(picture("PNG"))
    huge = zlib.compress(bytes(OVER_ONE_CHUNK), 9)
    each = zlib.compress(bytes(OVER_ALL_CHUNKS), 9)
    made = {
        "zTXt": chunk(b"zTXt", b"comment\0\0" + huge),
        "compressed iTXt": chunk(b"iTXt", b"comment\0\1\0\0\0" + huge),
        "iCCP": chunk(b"iCCP", b"profile\0\0" + huge),
    }
    for where in (b"IDAT", b"IEND"):  # read as the file is opened, or as its pixels are
        place = "before" if where == b"IDAT" else "after"
        for name, made_chunk in made.items():
            if name == "iCCP" and where == b"IEND":
                continue  # a colour profile after the pixels is ignored, as the specification says it must come first
            yield Broken(f"a {name} expanding to 2 MiB {place} the pixels", rebuild(parts, {where: [made_chunk]}), 422)
        many = [chunk(b"zTXt", b"c%d\0\0" % i + each) for i in range(CHUNKS)]
        yield Broken(
            f"{CHUNKS} zTXt expanding to 70 MiB together {place} the pixels", rebuild(parts, {where: many}), 422
        )


def bad_checksums() -> Iterator[Broken]:
    for original, kinds in ((picture("PNG"), (b"IHDR",)), (picture("PNG", palette=True), (b"IHDR", b"PLTE", b"tRNS"))):
        parts = chunks(original)
        for kind in kinds:
            out = [PNG_SIGNATURE]
            for k, data in parts:
                out.append(chunk(k, data, crc=zlib.crc32(k + data) ^ 1 if k == kind else None))
            yield Broken(f"a PNG whose {kind.decode()} checksum is wrong", b"".join(out), 422)
    gama = chunk(b"gAMA", struct.pack(">I", 45455), crc=0)
    yield Broken("a PNG whose gAMA checksum is wrong", rebuild(chunks(picture("PNG")), {b"IDAT": [gama]}), 422)


def sizes() -> Iterator[Broken]:
    for width, height in ((0, 40), (48, 0), (0, 0)):
        yield Broken(f"a PNG of {width}×{height} pixels", png_with_header(width, height), 422)
    for width, height in ((8000, 6000), (100_000, 100_000), (2**31 - 1, 2**31 - 1), (2**32 - 1, 1)):
        yield Broken(f"a PNG declaring {width}×{height} pixels", png_with_header(width, height), 422)
    jpeg = picture("JPEG")
    sof = jpeg.index(b"\xff\xc0")
    for width, height in ((0, 40), (48, 0), (65535, 65535)):
        data = jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]
        yield Broken(f"a JPEG declaring {width}×{height} pixels", data, 422)


def nonsense_headers() -> Iterator[Broken]:
    # (Not a compression method other than 0, nor a palette PNG without its palette, nor a JPEG without its Huffman
    # tables: Pillow reads those, with the one method there is, a grey palette and the standard tables.)
    for field, value in (("depth", 3), ("colour", 7), ("interlace", 2)):
        yield Broken(f"a PNG whose IHDR {field} is {value}", png_with_header(48, 40, **{field: value}), 422)
    parts = chunks(picture("PNG"))
    garbage = [(k, random.Random(1).randbytes(len(d)) if k == b"IDAT" else d) for k, d in parts]
    yield Broken("a PNG whose pixel data is not zlib", rebuild(garbage), 422)
    yield Broken("a PNG with no pixel data", rebuild([p for p in parts if p[0] != b"IDAT"]), 422)
    jpeg = picture("JPEG")
    for marker, name in ((b"\xff\xdb", "DQT"), (b"\xff\xc4", "DHT"), (b"\xff\xc0", "SOF"), (b"\xff\xda", "SOS")):
        at = jpeg.index(marker)
        yield Broken(f"a JPEG whose {name} segment has length 1", jpeg[: at + 2] + b"\x00\x01" + jpeg[at + 4 :], 422)
        if name != "DHT":
            yield Broken(f"a JPEG without its {name} segment", jpeg[:at] + jpeg[at + 2 + _length(jpeg, at) :], 422)
    sof = jpeg.index(b"\xff\xc0")
    for components in (0, 2, 5):
        data = jpeg[: sof + 9] + bytes([components]) + jpeg[sof + 10 :]
        yield Broken(f"a JPEG whose frame has {components} components", data, 422)
    exif = b"Exif\0\0MM\0\x2a\xff\xff\xff\xff"  # a TIFF header whose first directory lies past the end
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    yield Broken("a JPEG with Exif pointing past its end, and no pixels", JPEG_SIGNATURE[:2] + app1 + b"\xff\xd9", 422)


def _length(jpeg: bytes, at: int) -> int:
    (length,) = struct.unpack(">H", jpeg[at + 2 : at + 4])
    return int(length)


def corpus() -> list[Broken]:
    """Every broken file, in a fixed order (the same on every run)."""
    return [*truncations(), *oversized_chunks(), *bad_checksums(), *sizes(), *nonsense_headers()]
