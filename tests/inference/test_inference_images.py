"""Decoding real PNG, JPEG and DICOM chest radiographs, and the card-driven preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from cxrfail.inference.cards import Preprocessing, range_normalization
from cxrfail.inference.images import ImageDecodeError, decode_image, list_images, preprocess, read_image


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_8bit_png_scales_to_unit_range(nih_images):
    pixels = np.asarray(Image.open(nih_images[0]))
    image = read_image(nih_images[0])
    assert image.shape == (1, 512, 512) and image.dtype == torch.float32
    np.testing.assert_allclose(image[0].numpy(), pixels / 255.0, atol=1e-7)


def test_16bit_png_matches_its_8bit_source(nih_images):
    pixels = np.asarray(Image.open(nih_images[0]))
    wide = pixels.astype(np.uint16) * 257  # 255 -> 65535
    image = decode_image(_png_bytes(wide))
    assert Image.open(io.BytesIO(_png_bytes(wide))).mode.startswith("I;16")
    np.testing.assert_allclose(image[0].numpy(), pixels / 255.0, atol=1e-6)


def test_jpeg_and_rgb_images_decode(nih_images):
    pixels = np.asarray(Image.open(nih_images[1]))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    grey = decode_image(buffer.getvalue())
    assert grey.shape == (1, 512, 512)
    assert np.abs(grey[0].numpy() - pixels / 255.0).mean() < 0.01
    colour = np.stack([pixels, pixels // 2, pixels // 3], axis=-1)
    rgb = decode_image(_png_bytes(colour))
    assert rgb.shape == (3, 512, 512)
    np.testing.assert_allclose(rgb[1].numpy(), (pixels // 2) / 255.0, atol=1e-7)


def test_real_jpeg2000_chest_dicom_windowed_and_inverted(chest_dicom, chest_dicom_uncompressed):
    dataset = pydicom.dcmread(chest_dicom)
    assert dataset.PhotometricInterpretation == "MONOCHROME1" and dataset.BodyPartExamined == "CHEST"
    image = read_image(chest_dicom)
    assert image.shape == (1, dataset.Rows, dataset.Columns)
    centre, width = float(dataset.WindowCenter), float(dataset.WindowWidth)
    windowed = np.clip((dataset.pixel_array - (centre - 0.5)) / (width - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(image[0].numpy(), 1.0 - windowed, atol=1e-6)
    # MONOCHROME1: the lungs (air, low attenuation) come out darker than the mediastinum (bone, soft tissue)
    rows, cols = dataset.Rows, dataset.Columns
    lung = image[0, rows // 3 : rows // 2, cols // 5 : cols // 3].mean()
    spine = image[0, rows // 3 : rows // 2, cols // 2 - 40 : cols // 2 + 40].mean()
    assert lung < spine
    uncompressed = read_image(chest_dicom_uncompressed)
    torch.testing.assert_close(image, uncompressed)


def _modified_dicom(source, tmp_path, **changes):
    dataset = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    path = tmp_path / "modified.dcm"
    dataset.save_as(path)
    return path


def test_dicom_rescale_slope_and_intercept_apply_before_the_window(tmp_path, chest_dicom_uncompressed):
    source = chest_dicom_uncompressed
    reference = read_image(source)
    # the same image as modality values 2 * stored - 100, with the window moved accordingly
    rescaled = _modified_dicom(
        source, tmp_path, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=2 * 15000 - 100, WindowWidth=2 * 30000 - 1
    )
    np.testing.assert_allclose(read_image(rescaled).numpy(), reference.numpy(), atol=1e-4)


def test_dicom_without_window_uses_the_stored_bit_range_and_monochrome2_is_not_inverted(
    tmp_path, chest_dicom_uncompressed
):
    source = chest_dicom_uncompressed
    dataset = pydicom.dcmread(source)
    plain = _modified_dicom(
        source, tmp_path, WindowCenter=None, WindowWidth=None, PhotometricInterpretation="MONOCHROME2"
    )
    expected = dataset.pixel_array / (2**dataset.BitsStored - 1)
    np.testing.assert_allclose(read_image(plain)[0].numpy(), expected, atol=1e-6)


def test_dicom_voi_lut_sequence(tmp_path, chest_dicom_uncompressed):
    dataset = pydicom.dcmread(chest_dicom_uncompressed)
    lut = pydicom.Dataset()
    lut.LUTDescriptor = [4096, 0, 12]  # 4096 entries from stored value 0, 12-bit output
    lut.add_new("LUTData", "US", list(range(4095, -1, -1)))  # an inverting LUT
    dataset.VOILUTSequence = pydicom.Sequence([lut])
    del dataset.WindowCenter, dataset.WindowWidth
    dataset.PhotometricInterpretation = "MONOCHROME2"
    path = tmp_path / "lut.dcm"
    dataset.save_as(path)
    stored = np.clip(dataset.pixel_array, 0, 4095)
    expected = (4095 - stored) / 4095
    np.testing.assert_allclose(read_image(path)[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "image decoding failed"),
    ],
)
def test_unreadable_bytes_raise_with_a_reason(data, fragment):
    with pytest.raises(ImageDecodeError, match=fragment):
        decode_image(data)


def test_truncated_png_and_dicom_raise(nih_images, chest_dicom):
    png = nih_images[0].read_bytes()
    with pytest.raises(ImageDecodeError, match="image decoding failed"):
        decode_image(png[: len(png) // 2])
    dicom = chest_dicom.read_bytes()
    with pytest.raises(ImageDecodeError, match="DICOM"):
        decode_image(dicom[: len(dicom) // 2], ".dcm")


def test_xrv_preprocessing_matches_torchxrayvision_normalize(nih_images):
    import torchxrayvision as xrv

    pixels = np.asarray(Image.open(nih_images[0]))
    mean, std = range_normalization(-1024, 1024, channels=1)
    model_input = preprocess(read_image(nih_images[0]), Preprocessing(512, 512, 1, mean, std))
    expected = xrv.utils.normalize(pixels, 255)
    np.testing.assert_allclose(model_input[0].numpy(), expected, atol=1e-3)


def test_resize_then_centre_crop_of_a_non_square_image():
    image = torch.zeros(1, 100, 200)
    image[:, :, 50:150] = 1.0  # the central square is white, the sides black
    out = preprocess(image, Preprocessing(input_size=40, resize_size=50, channels=3, mean=(0.0,) * 3, std=(1.0,) * 3))
    assert out.shape == (3, 40, 40)
    # resized to 50 x 100, the centre 40 x 40 lies inside the white square
    assert torch.allclose(out, torch.ones_like(out))


def test_rgb_to_single_channel_uses_luminance():
    image = torch.stack([torch.full((8, 8), 1.0), torch.zeros(8, 8), torch.zeros(8, 8)])
    out = preprocess(image, Preprocessing(8, 8, 1, (0.0,), (1.0,)))
    assert out.shape == (1, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 0.299))


def test_list_images_recurses_and_skips_hidden_and_other_files(tmp_path, nih_images):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for target in ("x.png", "a/y.PNG", "a/b/z.dcm", ".hidden/h.png", "notes.txt"):
        (tmp_path / target).write_bytes(b"-")
    found = list_images(tmp_path)
    assert [identifier for identifier, _ in found] == ["a/b/z.dcm", "a/y.PNG", "x.png"]
    assert [path.relative_to(tmp_path).as_posix() for _, path in found] == ["a/b/z.dcm", "a/y.PNG", "x.png"]
