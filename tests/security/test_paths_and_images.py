"""Issue 21 items 2, 8 and 10: paths are checked when they are opened (by file descriptor), not only when typed;
every image decoder has a size limit that holds (DICOM embedded codestreams, CXRFAIL_MAX_PIXELS over Pillow's
cap, the file size); a refusal names no server folder."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrfail.errors import PathNotAllowedError
from cxrfail.inference.images import (
    ImageDecodeError,
    decode_image,
    display_png,
    read_cohort_image,
    read_image,
)
from cxrfail.roots import open_under_roots, resolve_under_roots


def _png(path: Path, size=(40, 30), value: int = 0) -> Path:
    pixels = (np.arange(size[0] * size[1]) + value).astype(np.uint8).reshape(size[1], size[0])
    Image.fromarray(pixels).save(path)
    return path


def _swap_for_symlink(folder: Path, target: Path) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(target, target_is_directory=True)


def test_an_image_folder_swapped_for_a_symlink_after_loading_is_not_followed(tmp_path):
    root = tmp_path / "root"
    images = root / "images"
    images.mkdir(parents=True)
    _png(images / "a.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    _png(outside / "a.png", value=7)
    accepted = resolve_under_roots(images, [root])  # what the Data page keeps as the dataset's image folder
    assert display_png("a.png", accepted)
    _swap_for_symlink(images, outside)
    with pytest.raises(PathNotAllowedError):
        read_cohort_image("a.png", accepted)
    with pytest.raises(PathNotAllowedError):
        display_png("a.png", accepted)


def test_a_typed_file_whose_parent_is_swapped_after_the_check_is_refused_when_opened(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "preds.csv").write_text("image_id,Edema\na,0.5\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "preds.csv").write_text("secret,row\n")
    checked = resolve_under_roots(root / "sub" / "preds.csv", [root])
    with open_under_roots(checked, [root]) as handle:
        assert handle.read().startswith(b"image_id")
    _swap_for_symlink(root / "sub", outside)
    with pytest.raises(PathNotAllowedError) as info:
        open_under_roots(checked, [root])
    assert str(root) not in str(info.value).replace(str(checked), "<typed>")


def test_refusals_name_no_server_folder(tmp_path):
    root = tmp_path / "configured-root"
    root.mkdir()
    for typed in ("/etc/passwd", "~/x.csv", "a\0b.csv"):
        with pytest.raises(PathNotAllowedError) as info:
            resolve_under_roots(typed, [root])
        assert str(root) not in str(info.value)


def _dicom(rows: int, columns: int, frame: bytes) -> bytes:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    dataset = pydicom.Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    dataset.Rows, dataset.Columns = rows, columns
    dataset.SamplesPerPixel, dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 1, 8, 8, 7
    dataset.PixelRepresentation, dataset.PhotometricInterpretation = 0, "MONOCHROME2"
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].is_undefined_length = True
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _jpeg(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_dicom_whose_embedded_image_is_larger_than_its_header_is_refused_before_decoding(monkeypatch):
    assert decode_image(_dicom(64, 64, _jpeg(64)), ".dcm").shape == (1, 64, 64)
    with pytest.raises(ImageDecodeError, match="header says 64 x 64 but its embedded image is 1500 x 1500"):
        decode_image(_dicom(64, 64, _jpeg(1500)), ".dcm")
    monkeypatch.setenv("CXRFAIL_MAX_PIXELS", "1000000")
    with pytest.raises(ImageDecodeError, match="1500 x 1500 .embedded. .* above the limit"):
        decode_image(_dicom(64, 64, _jpeg(1500)), ".dcm")


def test_cxrfail_max_pixels_decides_over_pillows_own_cap(tmp_path, monkeypatch):
    image = _png(tmp_path / "a.png").read_bytes()  # 40 x 30 = 1,200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow alone would refuse it (above 2 x 500)
    monkeypatch.setenv("CXRFAIL_MAX_PIXELS", "5000")
    assert decode_image(image).shape == (1, 30, 40)
    monkeypatch.setenv("CXRFAIL_MAX_PIXELS", "1000")
    with pytest.raises(ImageDecodeError, match="above the limit of 1,000 pixels"):
        decode_image(image)


def test_an_image_file_above_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = _png(tmp_path / "a.png", (400, 300))
    assert read_image(path).shape == (1, 300, 400)
    monkeypatch.setenv("CXRFAIL_MAX_IMAGE_MB", str(path.stat().st_size / 2 / 1e6))
    with pytest.raises(ImageDecodeError, match="above the limit of .* MB .CXRFAIL_MAX_IMAGE_MB"):
        read_image(path)
    with pytest.raises(ImageDecodeError, match="CXRFAIL_MAX_IMAGE_MB"):
        read_cohort_image("a.png", tmp_path)
