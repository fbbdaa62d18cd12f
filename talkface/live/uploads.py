"""Uploaded files: content type and size checked, written only into the server's own temporary
folder, images measured from their header before anything is decoded."""
from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path, PurePath

from talkface.live.errors import BadInput, TooLarge, UnsupportedType

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
AUDIO_TYPES = ("audio/", "video/mp4", "video/webm", "video/ogg", "video/quicktime", "application/ogg")


def safe_suffix(filename: str | None, default: str) -> str:
    """A safe file suffix from a client's file name (never a path)."""
    suffix = PurePath(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else default


async def save_upload(upload, kinds: tuple[str, ...], what: str, default_suffix: str, folder: Path,
                      max_bytes: int) -> Path:
    """The upload's bytes in a fresh folder under `folder`; the caller removes `path.parent`."""
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    if not any(ctype == k or (k.endswith("/") and ctype.startswith(k)) for k in kinds):
        raise UnsupportedType(f"{what}: unsupported content type '{ctype or 'none'}'")
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"{what} is larger than {max_bytes / 1e6:.1f} MB")
    if not data:
        raise BadInput(f"{what} is empty")
    job = Path(tempfile.mkdtemp(prefix="up-", dir=folder))
    path = job / f"{what}{safe_suffix(upload.filename, default_suffix)}"
    path.write_bytes(data)
    return path


def remove_upload(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path.parent, ignore_errors=True)


def check_image_header(path: Path, max_pixels: int) -> tuple[int, int]:
    """Width and height read from the header only (Pillow opens lazily): a small file that would
    decode to gigabytes is refused here, before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise TooLarge(f"the image upload has more than {max_pixels / 1e6:.0f} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"cannot read image: {type(exc).__name__} (the image upload)") from None
    if width * height > max_pixels:
        raise TooLarge(f"the image upload is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                       f"the limit is {max_pixels / 1e6:.0f} megapixels")
    return width, height


def load_portrait(path: Path, max_pixels: int):
    """A Portrait from an uploaded image, keeping only what a head-crop render needs (the whole
    source picture, used only by --framing full, is dropped). Blocking; run it bounded."""
    from talkface.analysis.portrait import Portrait, PortraitError

    check_image_header(path, max_pixels)
    try:
        portrait = Portrait.from_file(path)
    except PortraitError as exc:
        raise BadInput(clean_message(str(exc), path, "the image upload")) from None
    return replace(portrait, source=portrait.image)


def clean_message(message: str, path: Path, name: str) -> str:
    """An error message about a temp file, as the client should read it (no server paths)."""
    message = re.sub(r"\[Errno -?\d+\] ", "", message)
    message = re.sub(r":? ?'?" + re.escape(str(path)) + r"'?", "", message)
    return f"{message} ({name})"
