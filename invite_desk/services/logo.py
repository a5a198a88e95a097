"""What a logo really is, read from its bytes: PNG, JPEG, GIF or WebP, of bounded size.

The logo goes inline into every invitation email and onto the portal's pages, so the bytes a
caller hands over are never trusted: the type comes from the content (not from a file name
or a MIME string), the headers must parse, the dimensions must be sane, and a PNG must
decompress to exactly the pixels its header promises. SVG is refused: it is a document that
can carry scripts and external references, not a picture. Pure Python: no Qt here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from invite_desk.services.errors import ValidationFailed

MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_SIDE = 2048  # pixels, each way
LOGO_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
KINDS = "a PNG, JPEG, GIF or WebP image"


@dataclass(frozen=True)
class LogoImage:
    mime: str
    width: int
    height: int


class _Bad(Exception):
    """The bytes start like an image of this kind but do not hold one."""


def inspect_logo(data: bytes) -> LogoImage:
    """The logo's type and size, or ValidationFailed({"logo": why}) a person can act on."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _invalid(f"Logo must be {KINDS}")
    data = bytes(data)
    if not data:
        raise _invalid(f"Logo is empty; choose {KINDS}")
    if len(data) > MAX_LOGO_BYTES:
        raise _invalid(f"Logo must be at most {MAX_LOGO_BYTES // 1024} KB "
                       f"(this one is {len(data) / 1024:,.0f} KB); save it smaller")
    for signature, mime, reader in _READERS:
        if signature(data):
            try:
                width, height = reader(data)
            except (_Bad, struct.error, IndexError, zlib.error) as exc:
                name = mime.split("/")[1].upper()
                detail = f" ({exc})" if isinstance(exc, _Bad) and str(exc) else ""
                raise _invalid(f"Logo starts like a {name} image but is not a valid one"
                               f"{detail}; export it again from an image editor") from None
            if not (1 <= width <= MAX_LOGO_SIDE and 1 <= height <= MAX_LOGO_SIDE):
                raise _invalid(f"Logo is {width:,} × {height:,} pixels; it must be at most "
                               f"{MAX_LOGO_SIDE:,} × {MAX_LOGO_SIDE:,}")
            return LogoImage(mime, width, height)
    if _looks_like_svg(data):
        raise _invalid("SVG logos are not accepted (an SVG can carry scripts); export it "
                       "as a PNG instead")
    raise _invalid(f"Logo must be {KINDS}; this file is not one, whatever its name says")


def _invalid(reason: str) -> ValidationFailed:
    return ValidationFailed({"logo": reason})


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head)


# -- PNG ----------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _png(data: bytes) -> tuple[int, int]:
    position = len(_PNG_SIGNATURE)
    chunks: list[tuple[bytes, bytes]] = []
    while position < len(data):
        if position + 12 > len(data):
            raise _Bad("it is cut short")
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        if len(body) != length or position + 12 + length > len(data):
            raise _Bad("it is cut short")
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise _Bad("a checksum does not match")
        chunks.append((kind, body))
        position += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise _Bad("it has no image header")
    if chunks[-1][0] != b"IEND":
        raise _Bad("it is cut short")
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    if colour not in _PNG_DEPTHS or depth not in _PNG_DEPTHS[colour] or interlace > 1:
        raise _Bad("its header is not one PNG defines")
    if not (1 <= width <= MAX_LOGO_SIDE and 1 <= height <= MAX_LOGO_SIDE):
        return width, height  # refused by the caller before anything is decompressed
    if colour == 3 and not any(kind == b"PLTE" for kind, _ in chunks):
        raise _Bad("its palette is missing")
    compressed = b"".join(body for kind, body in chunks if kind == b"IDAT")
    if not compressed:
        raise _Bad("it holds no pixels")
    bits = depth * _PNG_CHANNELS[colour]
    expected = sum(rows * (1 + (columns * bits + 7) // 8)
                   for columns, rows in _png_passes(width, height, interlace) if columns and rows)
    inflater = zlib.decompressobj()
    pixels = inflater.decompress(compressed, expected + 1)  # never more than promised
    if len(pixels) != expected or not inflater.eof:
        raise _Bad("its pixels do not match its size")
    return width, height


def _png_passes(width: int, height: int, interlace: int) -> list[tuple[int, int]]:
    if not interlace:
        return [(width, height)]
    adam7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
             (1, 0, 2, 2), (0, 1, 1, 2))
    return [((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in adam7]


# -- GIF ----------------------------------------------------------------------------------

def _gif_sub_blocks(data: bytes, position: int) -> int:
    while True:
        size = data[position]
        position += 1 + size
        if size == 0:
            return position


def _gif(data: bytes) -> tuple[int, int]:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    position = 13
    if flags & 0x80:
        position += 3 * (2 << (flags & 0x07))
    frames = 0
    while True:
        if position >= len(data):
            raise _Bad("it is cut short")
        block = data[position]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            position = _gif_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor
            _x, _y, frame_width, frame_height, local = struct.unpack(
                "<HHHHB", data[position + 1:position + 10])
            if frame_width > MAX_LOGO_SIDE or frame_height > MAX_LOGO_SIDE:
                return frame_width, frame_height
            position += 10
            if local & 0x80:
                position += 3 * (2 << (local & 0x07))
            position = _gif_sub_blocks(data, position + 1)  # after the LZW code size
            frames += 1
        else:
            raise _Bad("it holds an unknown block")
    if not frames:
        raise _Bad("it holds no image")
    return width, height


# -- JPEG ---------------------------------------------------------------------------------

_JPEG_FRAMES = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> tuple[int, int]:
    position = 2
    size: tuple[int, int] | None = None
    while position < len(data):
        if data[position] != 0xFF:
            raise _Bad("a segment is damaged")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if length < 2 or position + 2 + length > len(data):
            raise _Bad("it is cut short")
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: compressed data follows, up to the end marker
            if size is None:
                raise _Bad("it has no frame header")
            if b"\xff\xd9" not in data[position + 2 + length:]:
                raise _Bad("it is cut short")
            return size
        position += 2 + length
    raise _Bad("it holds no image")


# -- WebP ---------------------------------------------------------------------------------

def _webp(data: bytes) -> tuple[int, int]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 > len(data) or riff_size < 12:
        raise _Bad("it is cut short")
    kind = data[12:16]
    (chunk_size,) = struct.unpack("<I", data[16:20])
    body = data[20:20 + chunk_size]
    if len(body) != chunk_size:
        raise _Bad("it is cut short")
    if kind == b"VP8 ":
        if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
            raise _Bad("its frame header is damaged")
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        if len(body) < 5 or body[0] != 0x2F:
            raise _Bad("its frame header is damaged")
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        if len(body) < 10:
            raise _Bad("its header is damaged")
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return width, height
    raise _Bad("it holds no image")


_READERS = (
    (lambda d: d.startswith(_PNG_SIGNATURE), "image/png", _png),
    (lambda d: d[:3] == b"\xff\xd8\xff", "image/jpeg", _jpeg),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), "image/gif", _gif),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", "image/webp", _webp),
)
