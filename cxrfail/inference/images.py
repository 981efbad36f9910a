"""Image decoding (PNG, JPEG, DICOM) and the model-card preprocessing.

Every decoder returns a float32 tensor of shape (C, H, W), C = 1 (grayscale) or 3 (RGB), with intensities in
[0, 1] where 1 is the brightest display value (bone white, as in MONOCHROME2):

- PNG / JPEG, 8-bit: value / 255; 16-bit grayscale: value / 65535; palette, alpha and other modes are converted
  to 8-bit grayscale or RGB first.
- DICOM (pydicom; JPEG 2000 and JPEG through Pillow's codecs): the modality LUT (rescale slope and intercept),
  then the VOI LUT or the first window (centre/width, LINEAR, LINEAR_EXACT or SIGMOID function), whose output
  range maps onto [0, 1]; without a VOI transform the range the stored bits allow (after rescaling) maps onto
  [0, 1]. MONOCHROME1 images are inverted. Multi-frame images use their first frame.

Every decoder refuses an image of more than `max_pixels` pixels before any pixel is decoded: PNG/JPEG by the
size in their header (Pillow's own decompression-bomb cap is set to the same limit, so ``CXRFAIL_MAX_PIXELS``
decides, above or below Pillow's default); DICOM by rows x columns x frames in its header and, for compressed
transfer syntaxes, by the size the embedded JPEG / JPEG-LS / JPEG 2000 codestream declares (which must equal
the header's), so a small file cannot make the process allocate gigabytes. Only the first frame is decoded.
A file larger than `max_image_bytes` is refused before it is read.

Anything a decoder cannot read raises `ImageDecodeError` with the reason; the engine records it as a failure.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cxrfail.inference.cards import Preprocessing

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom"})
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom"})
#: Bump when decoding or preprocessing changes what a model sees: part of every cache key.
DECODER_VERSION = 1

#: Default limit on pixels per image (rows x columns x frames): 100 megapixels, far above any radiograph
#: (CheXpert/NIH: 1024 x 1024 to about 4,300 x 3,500). ``$CXRFAIL_MAX_PIXELS`` overrides it.
MAX_PIXELS = 100_000_000
#: Default limit on an image file's size: 256 MB (an uncompressed 4,300 x 3,500 16-bit DICOM is about 30 MB).
#: ``$CXRFAIL_MAX_IMAGE_MB`` overrides it (megabytes).
MAX_IMAGE_BYTES = 256_000_000

_LUMINANCE = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


class ImageDecodeError(ValueError):
    """An image file is empty, corrupt or in a form cxrfail cannot read; the message says why."""


def max_pixels() -> int:
    """Most pixels one image may have: ``$CXRFAIL_MAX_PIXELS`` or `MAX_PIXELS`."""
    return int(os.environ.get("CXRFAIL_MAX_PIXELS") or MAX_PIXELS)


def max_image_bytes() -> int:
    """Largest image file accepted, in bytes: ``$CXRFAIL_MAX_IMAGE_MB`` x 10^6 or `MAX_IMAGE_BYTES`."""
    configured = os.environ.get("CXRFAIL_MAX_IMAGE_MB")
    return int(float(configured) * 1_000_000) if configured else MAX_IMAGE_BYTES


def _check_file_size(size: int) -> None:
    limit = max_image_bytes()
    if size > limit:
        raise ImageDecodeError(
            f"image file of {size / 1e6:.1f} MB is above the limit of {limit / 1e6:.1f} MB (CXRFAIL_MAX_IMAGE_MB)"
        )


def _check_pixels(count: int, shape: str) -> None:
    limit = max_pixels()
    if count > limit:
        raise ImageDecodeError(
            f"image of {shape} ({count:,} pixels) is above the limit of {limit:,} pixels (CXRFAIL_MAX_PIXELS)"
        )


def list_images(directory: str | Path) -> list[tuple[str, Path]]:
    """(image id, path) of the image files (by suffix: PNG, JPEG, DICOM) under ``directory``, recursively, sorted by
    id; hidden files and folders are skipped. The id is the path relative to ``directory`` with forward slashes."""
    directory = Path(directory)
    found = []
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = os.path.relpath(folder, directory)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        found.extend(
            (prefix + name, Path(folder, name))
            for name in files
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
        )
    return sorted(found)


def image_id(path: Path, root: Path) -> str:
    """The prediction table id of an image: its path relative to ``root``, with forward slashes."""
    return path.relative_to(root).as_posix()


def decode_image(data: bytes, suffix: str = "") -> torch.Tensor:
    """Decode an encoded image file's bytes into a (C, H, W) float32 tensor in [0, 1].

    ``suffix`` (the file's, e.g. ``.dcm``) marks DICOM files that lack the 128-byte preamble; other formats are
    told apart by content.
    """
    if not data:
        raise ImageDecodeError("empty file")
    _check_file_size(len(data))
    is_dicom = data[128:132] == b"DICM" or suffix.lower() in DICOM_SUFFIXES
    try:
        array = _decode_dicom(data) if is_dicom else _decode_pillow(data)
    except ImageDecodeError:
        raise
    except Exception as exc:  # decoders raise many types on malformed input; each is one unreadable image
        raise ImageDecodeError(
            f"{'DICOM' if is_dicom else 'image'} decoding failed: {type(exc).__name__}: {exc}"
        ) from exc
    if array.ndim == 2:
        array = array[None]
    if array.shape[-1] == 0 or array.shape[-2] == 0:
        raise ImageDecodeError(f"image has no pixels (shape {tuple(array.shape)})")
    if not np.isfinite(array).all():
        raise ImageDecodeError("image has non-finite pixel values")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def read_image(path: str | Path) -> torch.Tensor:
    """Read and decode one image file; see `decode_image`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return decode_image(_read_limited(handle), path.suffix)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}") from exc


def _read_limited(handle) -> bytes:
    """The bytes of an open image file, refused (`ImageDecodeError`) when larger than `max_image_bytes`."""
    _check_file_size(os.fstat(handle.fileno()).st_size)
    data = handle.read(max_image_bytes() + 1)
    _check_file_size(len(data))
    return data


def read_cohort_image(path: str | Path, image_root: str | Path) -> torch.Tensor:
    """`read_image` for a path taken from a cohort: it must resolve (symlinks, ``..``) inside ``image_root``,
    else `PathNotAllowedError` before the file is opened; the file actually opened is checked again by its
    descriptor, so an image folder swapped for a symlink after the cohort was loaded is refused, not followed.
    ``image_root`` is the folder as it was accepted (resolved then; not resolved again here)."""
    from cxrfail.roots import open_under_roots, resolve_inside

    resolved = resolve_inside(path, image_root)
    try:
        with open_under_roots(resolved, (image_root,)) as handle:
            return decode_image(_read_limited(handle), resolved.suffix)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}") from exc


def display_png(path: str | Path, image_root: str | Path, max_side: int = 1024) -> bytes:
    """PNG bytes (8-bit grayscale or RGB, longest side at most ``max_side`` pixels) of a cohort image for the
    browser: decoded here, so the browser never gets a server path. ``path`` must lie inside ``image_root``
    (`PathNotAllowedError`); an unreadable image raises `ImageDecodeError`."""
    image = read_cohort_image(path, image_root)
    height, width = image.shape[-2:]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    picture = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def preprocess(image: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """Turn a decoded (C, H, W) image in [0, 1] into one model input of shape
    (channels, input_size, input_size), float32, as described by ``preprocessing``."""
    if image.shape[0] == 3 and preprocessing.channels == 1:
        image = (image * _LUMINANCE).sum(dim=0, keepdim=True)
    height, width = image.shape[-2:]
    scale = preprocessing.resize_size / min(height, width)
    size = (max(preprocessing.resize_size, round(height * scale)), max(preprocessing.resize_size, round(width * scale)))
    if size != (height, width):
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    crop = preprocessing.input_size
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    image = image[:, top : top + crop, left : left + crop]
    if image.shape[0] == 1 and preprocessing.channels == 3:
        image = image.expand(3, -1, -1)
    mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)
    return ((image - mean) / std).contiguous()


def _decode_pillow(data: bytes) -> np.ndarray:
    limit = max_pixels()
    # Pillow's own cap (a warning above it, an error above twice it) is made cxrfail's limit, so that
    # CXRFAIL_MAX_PIXELS decides; the header size is checked by `_check_pixels` before any pixel is decoded.
    Image.MAX_IMAGE_PIXELS = limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                _check_pixels(image.width * image.height, f"{image.width} x {image.height}")
                image.load()
                return _pillow_array(image)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageDecodeError(f"image is above the limit of {limit:,} pixels (CXRFAIL_MAX_PIXELS)") from None


def _pillow_array(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "I":  # 16-bit grayscale as 32-bit integers
        return np.clip(np.asarray(image, dtype=np.float32), 0, 65535) / 65535.0
    if image.mode in ("1", "L", "LA"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    if np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[1], rgb[2]):  # grayscale stored as colour
        return rgb[0]
    return rgb


def _decode_dicom(data: bytes) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    if "PixelData" not in dataset:
        raise ImageDecodeError("DICOM file has no pixel data")
    rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    _check_pixels(rows * columns * max(frames, 1), f"{rows} x {columns} x {frames} frame(s)")
    if dataset.file_meta.get("TransferSyntaxUID") is not None and dataset.file_meta.TransferSyntaxUID.is_compressed:
        _check_embedded_size(dataset, rows, columns, frames)
    from pydicom.pixels import pixel_array

    pixels = pixel_array(dataset, index=0 if frames > 1 else None)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if int(dataset.get("SamplesPerPixel", 1)) == 3:  # pydicom converts YBR to RGB
        return pixels.astype(np.float32).transpose(2, 0, 1) / float(2 ** int(dataset.BitsStored) - 1)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageDecodeError(f"unsupported DICOM photometric interpretation {photometric}")
    modality = apply_modality_lut(pixels, dataset)
    values = np.asarray(modality, dtype=np.float64)
    if "VOILUTSequence" in dataset:
        lut_bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        scaled = np.asarray(apply_voi_lut(modality, dataset, index=0), dtype=np.float64) / (2**lut_bits - 1)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        scaled = _window(values, dataset)
    else:
        low, high = _stored_range(dataset)
        scaled = (values - low) / (high - low)
    scaled = np.clip(scaled, 0.0, 1.0)
    return 1.0 - scaled if photometric == "MONOCHROME1" else scaled


def _check_embedded_size(dataset, rows: int, columns: int, frames: int) -> None:
    """Refuse (`ImageDecodeError`) a compressed DICOM whose first frame's codestream declares another size than
    the header's rows x columns, before it is decoded: the decoder would allocate what the codestream says."""
    from pydicom.encaps import get_frame

    frame = get_frame(dataset.PixelData, 0, number_of_frames=frames)
    declared = codestream_size(frame)
    if declared is None:
        return  # RLE and other codecs decode to the header's size
    height, width = declared
    if (height, width) != (rows, columns):
        _check_pixels(height * width, f"{width} x {height} (embedded)")
        raise ImageDecodeError(f"DICOM header says {columns} x {rows} but its embedded image is {width} x {height}")


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic; JPEG-LS is 0xF7).
_JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7})


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) a JPEG, JPEG-LS or JPEG 2000 codestream declares in its header (SOF or SIZ marker),
    read without decoding; None when ``data`` is none of these. Raises `ImageDecodeError` for a JPEG or JPEG
    2000 stream whose header cannot be read."""
    siz = data.find(b"\xff\x4f\xff\x51")  # JPEG 2000: SOC then SIZ (also inside a JP2 file's codestream box)
    if data[:2] != b"\xff\xd8" and siz >= 0:
        header = data[siz + 4 : siz + 4 + 20]
        if len(header) < 20:
            raise ImageDecodeError("truncated JPEG 2000 header")
        x_size, y_size, x_offset, y_offset = np.frombuffer(header[4:20], dtype=">u4").tolist()
        return y_size - y_offset, x_size - x_offset
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageDecodeError("malformed JPEG header")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _JPEG_SOF:
            segment = data[position + 4 : position + 9]
            if len(segment) < 5:
                break
            return int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
        if marker == 0xDA:  # start of scan before any frame header
            break
        position += 2 + length
    raise ImageDecodeError("JPEG header has no frame size")


def _first(value: object) -> float:
    """The first of a multi-valued DICOM element (several windows), or the single value."""
    from pydicom.multival import MultiValue

    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def _window(values: np.ndarray, dataset) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing of modality values onto [0, 1] (first window only)."""
    centre, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
    function = str(dataset.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    if function == "LINEAR_EXACT":
        return (values - centre) / width + 0.5
    if width < 1:
        raise ImageDecodeError(f"DICOM window width {width} is below 1")
    if width == 1:
        return (values >= centre).astype(np.float64)
    return (values - (centre - 0.5)) / (width - 1) + 0.5


def _stored_range(dataset) -> tuple[float, float]:
    """The modality-value range the stored bits allow: (low, high)."""
    bits = int(dataset.BitsStored)
    signed = int(dataset.PixelRepresentation) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
    low, high = sorted((low * slope + intercept, high * slope + intercept))
    return low, high
