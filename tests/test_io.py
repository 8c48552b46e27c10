"""Focal stack folders: image files of every kind, the camera file, EXIF, resizing."""

import numpy as np
import pytest
import tifffile
from PIL import Image

import dfd_lite as dl
from dfd_lite import io


def _png16_rgb_by_hand(path, arr):
    """A 16-bit RGB PNG written from the format's definition (an oracle independent of pypng)."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def values():
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, size=(6, 7, 3), dtype=np.uint16)


def test_sixteen_bit_colour_png_keeps_sixteen_bits(tmp_path, values):
    # Pillow alone would return 8-bit values for this file
    path = tmp_path / "a.png"
    _png16_rgb_by_hand(path, values)
    img = io.read_image(path)
    assert img.dtype == np.float32 and img.shape == (6, 7, 3)
    np.testing.assert_allclose(img, values / 65535.0, atol=1e-7)


def test_write_png_round_trips_every_kind(tmp_path, values):
    for arr in (values, values[..., 0], (values >> 8).astype(np.uint8),
                (values[..., 1] >> 8).astype(np.uint8)):
        io.write_png(tmp_path / "x.png", arr)
        top = 65535.0 if arr.dtype == np.uint16 else 255.0
        np.testing.assert_allclose(io.read_image(tmp_path / "x.png"), arr / top, atol=1e-7)


def test_tiff_jpeg_and_alpha(tmp_path, values):
    tifffile.imwrite(tmp_path / "a.tif", values)
    np.testing.assert_allclose(io.read_image(tmp_path / "a.tif"), values / 65535.0, atol=1e-7)
    smooth = np.full((16, 16, 3), 120, np.uint8)
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    assert abs(float(io.read_image(tmp_path / "a.jpg").mean()) - 120 / 255) < 2 / 255
    rgba = np.dstack([smooth, np.full((16, 16), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert io.read_image(tmp_path / "opaque.png").shape == (16, 16, 3)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    with pytest.raises(ValueError, match="transparent"):
        io.read_image(tmp_path / "clear.png")
    tifffile.imwrite(tmp_path / "f.tif", np.full((4, 4), 1.5, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        io.read_image(tmp_path / "f.tif")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot be read"):
        io.read_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no such image"):
        io.read_image(tmp_path / "missing.png")


def _stack(shape=(24, 32), seed=0):
    scene = dl.synthetic_scene(shape, seed=seed)
    cam = dl.Camera.nyuv2()
    return dl.focal_stack(scene, cam), cam


def test_folder_round_trip_with_camera_file(tmp_path):
    stack, cam = _stack()
    cam = cam.with_psf("disc", blur_scale=0.8)
    paths = io.save_stack_folder(tmp_path, stack, cam, depth_range=(0.5, 7.0))
    assert [p.name for p in paths] == [f"slice_0{i}.png" for i in range(5)]
    loaded, cam2, depth_range = io.load_stack_folder(tmp_path)
    assert cam2 == cam and depth_range == (0.5, 7.0)
    np.testing.assert_allclose(loaded, stack, atol=0.5 / 65535 + 1e-7)
    # eight bits: one grey level
    io.save_stack_folder(tmp_path / "8", stack[..., 0], cam, bit_depth=8)
    loaded8, _, _ = io.load_stack_folder(tmp_path / "8")
    assert loaded8.shape == stack.shape[:3]
    np.testing.assert_allclose(loaded8, stack[..., 0], atol=0.5 / 255 + 1e-6)


def test_natural_order_and_explicit_images(tmp_path):
    levels = {"img10.png": 200, "img2.png": 20, "img1.png": 10}
    for name, level in levels.items():
        io.write_png(tmp_path / name, np.full((8, 8), level, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    cam = dl.Camera(0.05, 8.0, 1e-5, (1.0, 2.0, 3.0))
    io.write_camera(tmp_path / "camera.toml", cam)
    stack, _, _ = io.load_stack_folder(tmp_path)
    assert [round(float(s.mean()) * 255) for s in stack] == [10, 20, 200]   # 1, 2, 10
    io.write_camera(tmp_path / "camera.toml", cam, images=["img10.png", "img1.png", "img2.png"])
    stack, _, _ = io.load_stack_folder(tmp_path)
    assert [round(float(s.mean()) * 255) for s in stack] == [200, 10, 20]


def _camera_text(**fields):
    base = {"focal_length": "0.05", "f_number": "8", "pixel_size": "1.2e-5",
            "focus_distances": "[1.0, 2.0]"}
    base.update(fields)
    return "\n".join(f"{k} = {v}" for k, v in base.items() if v is not None) + "\n"


@pytest.mark.parametrize("fields, message", [
    ({"focal_length": None}, "focal_length is missing"),
    ({"focus_distances": None}, "focus_distances is missing"),
    ({"f_number": '"eight"'}, "f_number must be a number"),
    ({"pixel_size": "-1.0"}, "pixel_size must be positive"),
    ({"focus_distances": "[1.0, -2.0]"}, "focus_distances must be positive"),
    ({"focus_distances": "[0.04, 2.0]"}, "beyond the focal length"),
    ({"focus_distances": "[]"}, "focus_distances must be a list of numbers"),
    ({"psf": '"cone"'}, "psf must be one of"),
    ({"images": '["a.png"]'}, "images lists 1 files but focus_distances has 2"),
    ({"depth_range": "[5.0, 1.0]"}, "depth_range must be"),
    ({"depth_range": "[0.01, 1.0]"}, "beyond the focal length"),
    ({"focal_lenght": "0.05"}, "unknown field"),
    ({"min_radius": "-1"}, "min_radius must be a number >= 0"),
])
def test_camera_file_errors_name_the_field(tmp_path, fields, message):
    path = tmp_path / "camera.toml"
    path.write_text(_camera_text(**fields))
    with pytest.raises(ValueError, match=message):
        io.read_camera(path)


def test_camera_file_not_toml_or_missing(tmp_path):
    path = tmp_path / "camera.toml"
    path.write_text("focal_length = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        io.read_camera(path)
    with pytest.raises(ValueError, match="not found"):
        io.read_camera(tmp_path / "nope.toml")


def test_missing_optics_come_from_exif(tmp_path):
    img = Image.fromarray(np.full((30, 40, 3), 90, np.uint8))
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x920A] = 4.25        # focal length, mm
    sub[0x829D] = 1.8         # f-number
    sub[0xA20E] = 2000.0      # focal-plane pixels per unit ...
    sub[0xA210] = 4           # ... of a millimetre
    sub[0xA002] = 400         # the sensor's full width, pixels
    for name in ("a.jpg", "b.jpg"):
        img.save(tmp_path / name, exif=exif)
    (tmp_path / "camera.toml").write_text("focus_distances = [0.1, 0.3]\n")
    _, cam, _ = io.load_stack_folder(tmp_path)
    assert cam.focal_length == pytest.approx(4.25e-3)
    assert cam.f_number == pytest.approx(1.8)
    # 1 mm / 2000 at the full 400-pixel width is 0.5 um; the file is 10x smaller
    assert cam.pixel_size == pytest.approx(5e-6)
    # the file wins over EXIF
    (tmp_path / "camera.toml").write_text("focus_distances = [0.1, 0.3]\nf_number = 2.8\n")
    assert io.load_stack_folder(tmp_path)[1].f_number == 2.8
    # no EXIF and no field: the error says both
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("a.png", "b.png"):
        io.write_png(plain / name, np.zeros((8, 8), np.uint8))
    (plain / "camera.toml").write_text("focus_distances = [0.1, 0.3]\n")
    with pytest.raises(ValueError, match="focal_length is missing .*EXIF"):
        io.load_stack_folder(plain)


def test_folder_errors(tmp_path):
    cam = dl.Camera(0.05, 8.0, 1e-5, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="not found"):
        io.load_stack_folder(tmp_path / "absent")
    io.write_camera(tmp_path / "camera.toml", cam)
    with pytest.raises(ValueError, match="no images"):
        io.load_stack_folder(tmp_path)
    for i, size in enumerate((8, 8, 9)):
        io.write_png(tmp_path / f"s{i}.png", np.zeros((size, 8), np.uint8))
    with pytest.raises(ValueError, match=r"differ in size .*s2.png: \(9, 8\)"):
        io.load_stack_folder(tmp_path)
    io.write_png(tmp_path / "s2.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in size or channels"):
        io.load_stack_folder(tmp_path)
    io.write_png(tmp_path / "s2.png", np.zeros((8, 8), np.uint8))
    io.write_png(tmp_path / "s3.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="4 images but 3 focus distances"):
        io.load_stack_folder(tmp_path)
    io.write_camera(tmp_path / "camera.toml", cam, images=["s0.png", "s1.png", "gone.png"])
    with pytest.raises(ValueError, match="'gone.png'.* not found"):
        io.load_stack_folder(tmp_path)
    one = dl.Camera(0.05, 8.0, 1e-5, (1.0,))
    io.write_camera(tmp_path / "camera.toml", one, images=["s0.png"])
    with pytest.raises(ValueError, match="at least 2 slices"):
        io.load_stack_folder(tmp_path)


def test_resize_scales_the_pixel_size(tmp_path):
    stack, cam = _stack((40, 60))
    small, cam2 = io.resize_stack(stack, cam, max_size=30)
    assert small.shape == (5, 20, 30, 3)
    assert cam2.pixel_size == pytest.approx(2 * cam.pixel_size)
    # the blur radius in pixels halves with the pixels' size doubling
    np.testing.assert_allclose(dl.coc_radius(3.0, cam2, clamp=False),
                               dl.coc_radius(3.0, cam, clamp=False) / 2)
    same, cam3 = io.resize_stack(stack, cam, max_size=60)
    assert same.shape == stack.shape and cam3 == cam
    with pytest.raises(ValueError, match="max_size"):
        io.resize_stack(stack, cam, max_size=4)
