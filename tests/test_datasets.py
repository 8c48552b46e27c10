"""The public data-set readers, on tiny fakes of the published files."""

import h5py
import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize

import dfd_lite as dl
from dfd_lite.datasets import (MOBILE_DEPTH_SCENES, load_mobile_depth, load_nyuv2, nyuv2_camera,
                               nyuv2_count, nyuv2_scene)

# ----------------------------------------------------------------------------- NYUv2

H, W, N = 48, 64, 2  # non-square, so a transposed read cannot pass


def _matlab_arrays():
    """Images (H, W, 3, N) uint8 and depths (H, W, N), indexed as MATLAB does (row, col)."""
    img = np.zeros((H, W, 3, N), dtype=np.uint8)
    depth = np.zeros((H, W, N))
    rows, cols = np.mgrid[0:H, 0:W]
    for n in range(N):
        img[..., n] = 40 + 10 * n
        img[0:4, 0:8, :, n] = 255                 # white, top-left, wider than tall
        img[H - 4:, W - 8:, :, n] = (255, 0, 0)    # red, bottom-right
        depth[..., n] = 1.0 + 0.1 * rows + 0.02 * cols + n
    depth[10, 20, 0] = 0.0     # not measured: one pixel
    depth[36:40, 0:8, 0] = 0.0  # and a block
    depth[20, 30, 0] = 25.0    # beyond 10 m
    depth[30, 40, 0] = 0.05    # nearer than 0.1 m
    return img, depth


def _write_mat(path, img, depth, *, keys=("images", "depths")):
    # A MATLAB v7.3 file is HDF5 behind a 512-byte header; h5py sees the
    # arrays with their dimensions reversed.
    with h5py.File(path, "w", userblock_size=512) as f:
        if "images" in keys:
            f["images"] = img.transpose(3, 2, 1, 0)
        if "depths" in keys:
            f["depths"] = depth.transpose(2, 1, 0).astype(np.float32)
        f["names"] = np.arange(3)  # other datasets are ignored
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    return path


@pytest.fixture
def nyu(tmp_path):
    img, depth = _matlab_arrays()
    return _write_mat(tmp_path / "nyu_depth_v2_labeled.mat", img, depth), img, depth


def test_nyuv2_full_resolution_orientation_and_values(nyu):
    path, img, depth = nyu
    assert nyuv2_count(path) == N
    s = nyuv2_scene(path, 0, resolution="full")
    assert s.name == "nyuv2-0000"
    assert s.aif.shape == (H, W, 3) and s.aif.dtype == np.float32
    assert s.depth.shape == (H, W) and s.depth.dtype == np.float32
    assert (s.aif[0:4, 0:8] == 1).all()                                     # white, top-left,
    assert s.aif[4, 0].max() < 1 and s.aif[0, 8].max() < 1                  # 4 rows x 8 cols
    np.testing.assert_array_equal(s.aif[-1, -1], [1, 0, 0])                 # red, bottom-right
    np.testing.assert_allclose(s.aif, img[..., 0] / 255, atol=1e-7)
    # depth grows 0.1 m per row and 0.02 m per column
    assert s.depth[5, 0] == pytest.approx(1.5) and s.depth[0, 5] == pytest.approx(1.1)
    assert s.depth[20, 30] == 10.0 and s.depth[30, 40] == pytest.approx(0.1)
    assert s.depth[10, 20] == pytest.approx(0.1)                            # 0 clipped up
    np.testing.assert_allclose(s.depth, np.clip(depth[..., 0], 0.1, 10), rtol=1e-6)
    assert not s.valid[10, 20] and not s.valid[36:40, 0:8].any()
    assert s.valid.sum() == H * W - 1 - 32
    assert nyuv2_scene(path, 1, resolution="full").name == "nyuv2-0001"


def test_nyuv2_half_resolution(nyu):
    path, img, depth = nyu
    s = nyuv2_scene(path, 1)
    assert s.aif.shape == (H // 2, W // 2, 3) and s.depth.shape == (H // 2, W // 2)
    expected = resize(img[..., 1] / 255, (H // 2, W // 2, 3), order=1, anti_aliasing=True,
                      preserve_range=True)
    np.testing.assert_allclose(s.aif, expected, atol=1e-6)
    assert s.aif[0, 1].min() > 0.8 and s.aif[-1, -2, 0] > 0.8 > s.aif[-1, -2, 1]
    expected = resize(depth[..., 1], (H // 2, W // 2), order=1, anti_aliasing=True,
                      preserve_range=True)
    np.testing.assert_allclose(s.depth, np.clip(expected, 0.1, 10), rtol=1e-6)
    assert s.valid.all()
    # the depth is resized before it is clipped, as in the paper
    s0 = nyuv2_scene(path, 0)
    small = resize(depth[..., 0], (H // 2, W // 2), order=1, anti_aliasing=True,
                   preserve_range=True)
    np.testing.assert_allclose(s0.depth, np.clip(small, 0.1, 10), rtol=1e-6)
    clipped_first = resize(np.clip(depth[..., 0], 0.1, 10), (H // 2, W // 2), order=1,
                           anti_aliasing=True, preserve_range=True)
    assert np.abs(s0.depth - clipped_first).max() > 0.5
    # valid where mostly measured: the lone unmeasured pixel (10, 20) is outvoted, the
    # unmeasured block (rows 36-39, columns 0-7) is not
    assert s0.valid[5, 10] and not s0.valid[18:20, 0:4].any()
    assert s0.valid[17].all() and s0.valid[20].all() and s0.valid[18:20, 5:].all()


def test_load_nyuv2_is_the_papers_stack(nyu):
    path = nyu[0]
    scene = nyuv2_scene(path, 1)
    stack, camera = load_nyuv2(path, 1)
    assert camera == dl.Camera.nyuv2()
    assert stack.shape == (5, H // 2, W // 2, 3)
    np.testing.assert_array_equal(stack, dl.render_stack(scene.aif, scene.depth, camera))
    noisy, _ = load_nyuv2(path, 1, noise_std=0.01, seed=3)
    np.testing.assert_array_equal(
        noisy, dl.render_stack(scene.aif, scene.depth, camera, noise_std=0.01, seed=3))


def test_load_nyuv2_physical_is_the_disc_with_the_gaussian_camera(nyu):
    path = nyu[0]
    scene = nyuv2_scene(path, 1)
    stack, camera = load_nyuv2(path, 1, physical=True, noise_std=0.01, seed=2)
    assert camera == dl.Camera.nyuv2() and camera.psf == "gaussian"
    np.testing.assert_array_equal(
        stack, dl.render_physical(scene.aif, scene.depth, camera.with_psf("disc"),
                                  read_noise=0.01, seed=2))
    assert not np.allclose(stack, load_nyuv2(path, 1)[0], atol=0.02)


def test_nyuv2_full_resolution_camera_has_the_same_blur_in_metres(nyu):
    half, full = nyuv2_camera(), nyuv2_camera(resolution="full")
    assert half == dl.Camera.nyuv2()
    assert full.pixel_size == pytest.approx(6e-6) and full.min_radius == 4.0
    depths = np.array([0.5, 2.0, 9.0])
    np.testing.assert_allclose(dl.coc_radius(depths, full), 2 * dl.coc_radius(depths, half))
    stack, camera = load_nyuv2(nyu[0], 0, resolution="full")
    assert camera == full and stack.shape == (5, H, W, 3)


def test_nyuv2_errors(tmp_path, nyu):
    path = nyu[0]
    with pytest.raises(ValueError, match="missing.mat: not found"):
        nyuv2_count(tmp_path / "missing.mat")
    text = tmp_path / "old.mat"
    text.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ValueError, match="old.mat: not an HDF5 file"):
        nyuv2_scene(text, 0)
    img, depth = _matlab_arrays()
    no_depths = _write_mat(tmp_path / "no_depths.mat", img, depth, keys=("images",))
    with pytest.raises(ValueError, match="no_depths.mat: no 'depths' dataset"):
        nyuv2_count(no_depths)
    no_images = _write_mat(tmp_path / "no_images.mat", img, depth, keys=("depths",))
    with pytest.raises(ValueError, match="no 'images' dataset"):
        load_nyuv2(no_images, 0)
    wrong = _write_mat(tmp_path / "wrong.mat", img, depth[:, :-1])
    with pytest.raises(ValueError, match=r"'depths' is float32 of shape \(2, 63, 48\)"):
        nyuv2_scene(wrong, 0)
    for index in (2, -1):
        with pytest.raises(ValueError, match=f"index {index} is out of range.*holds 2 images"):
            nyuv2_scene(path, index)
    with pytest.raises(TypeError, match="index must be an integer"):
        nyuv2_scene(path, 1.0)
    with pytest.raises(ValueError, match="resolution must be one of"):
        load_nyuv2(path, 0, resolution="quarter")
    with pytest.raises(ValueError, match="resolution must be one of"):
        nyuv2_camera(resolution="Half")
    with pytest.raises(ValueError, match="noise_std"):
        load_nyuv2(path, 0, noise_std=-0.1)


# ------------------------------------------------------------------- mobile-phone focal stacks

SH, SW = 16, 24                       # the files' size: non-square
FOCUS = (30.0, 10.0, 20.0)            # a00, a01, a02: deliberately not increasing
LEVELS = (0.2, 0.4, 0.6)              # each slice's brightness, to follow the reordering


def _jpeg(path, level, *, shape=(SH, SW)):
    img = np.full(shape + (3,), level)
    img[0:8, 0:8] = 1.0  # the marker: the stored top-left 8 x 8 block (one JPEG block)
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path, quality=100,
                                                                  subsampling=0)


def _mobile_root(tmp_path, scene="metals", calib="metal", *, lines=None):
    root = tmp_path / "mobile"
    aligned = root / "aligned-focus-stack" / "Aligned"
    (aligned / "other-group" / "plants").mkdir(parents=True)
    folder = aligned / "group" / scene
    folder.mkdir(parents=True)
    for i, level in enumerate(LEVELS):
        _jpeg(folder / f"a{i:02d}.jpg", level)
    _jpeg(folder / "b00.jpg", 0.9)       # not an aligned slice (no leading a)
    _jpeg(folder / "a03.png", 0.9)       # not a .jpg
    calib_dir = root / "photos-calibration-results" / "calibration" / calib
    calib_dir.mkdir(parents=True)
    if lines is None:
        lines = [f"{z} 0.25" for z in FOCUS[:2]] + ["", f"{FOCUS[2]}\t0.25", "0.5", ""]
    (calib_dir / "calibrated.txt").write_text("\n".join(lines))
    return root, folder, calib_dir / "calibrated.txt"


def test_mobile_depth_full_resolution_sorted_and_rotated(tmp_path):
    root = _mobile_root(tmp_path)[0]
    stack, camera, depth_range = load_mobile_depth(root, "metals", resolution="full")
    assert stack.shape == (3, SW, SH, 3) and stack.dtype == np.float32
    assert camera.focus_distances == (10.0, 20.0, 30.0)
    assert camera.focal_length == 0.5 and camera.f_number == 2.0
    assert camera.pixel_size == 0.75 and camera.min_radius == 0.1 and camera.psf == "gaussian"
    assert depth_range == (1.0, 800.0)
    # a far corner of each slice holds its brightness: sorted with the focus distances
    np.testing.assert_allclose(stack[:, -1, 0, 0], (0.4, 0.6, 0.2), atol=0.01)
    # turned a quarter clockwise: the stored top-left block is now top-right
    assert (stack[:, :8, -8:] > 0.98).all()
    assert (stack[:, :8, :-8] < 0.7).all() and (stack[:, 8:] < 0.7).all()

    unrotated, _, _ = load_mobile_depth(root, "metals", resolution="full", rotate=False)
    assert unrotated.shape == (3, SH, SW, 3)
    assert (unrotated[:, :8, :8] > 0.98).all() and (unrotated[:, 8:] < 0.7).all()
    np.testing.assert_array_equal(np.rot90(unrotated, k=-1, axes=(1, 2)), stack)


def test_mobile_depth_half_resolution(tmp_path):
    root = _mobile_root(tmp_path)[0]
    full, _, _ = load_mobile_depth(root, "metals", resolution="full", rotate=False)
    stack, camera, _ = load_mobile_depth(root, "metals")
    assert stack.shape == (3, SW // 2, SH // 2, 3)
    assert camera.pixel_size == 1.5
    expected = [np.rot90(resize(s, (SH // 2, SW // 2, 3), order=1, anti_aliasing=True,
                                preserve_range=True), k=-1) for s in full]
    np.testing.assert_allclose(stack, np.stack(expected), atol=1e-6)
    assert (stack[:, :3, -3:] > 0.9).all() and (stack[:, -3:, :3] < 0.7).all()


def test_mobile_depth_calibration_folder_names(tmp_path):
    root = _mobile_root(tmp_path, scene="zeromotion", calib="GT")[0]
    assert load_mobile_depth(root, "zeromotion")[1].focus_distances == (10.0, 20.0, 30.0)
    root = _mobile_root(tmp_path / "b", scene="keyboard", calib="keyboard")[0]
    assert load_mobile_depth(root, "keyboard")[0].shape[0] == 3
    root = _mobile_root(tmp_path / "c", scene="metals", calib="metals")[0]
    with pytest.raises(ValueError, match=r"metal[/\\]calibrated.txt: not found"):
        load_mobile_depth(root, "metals")
    assert len(MOBILE_DEPTH_SCENES) == 11 and "bucket" not in MOBILE_DEPTH_SCENES


def test_mobile_depth_errors(tmp_path):
    root, folder, calib = _mobile_root(tmp_path)
    with pytest.raises(ValueError, match="nowhere: not found"):
        load_mobile_depth(tmp_path / "nowhere", "metals")
    with pytest.raises(ValueError, match="unknown scene 'garden'.*keyboard, bottles"):
        load_mobile_depth(root, "garden")
    with pytest.raises(ValueError, match="'kitchen' has no calibration"):
        load_mobile_depth(root, "kitchen")
    with pytest.raises(TypeError, match="scene must be a string"):
        load_mobile_depth(root, 3)
    with pytest.raises(ValueError, match="no folder named 'keyboard'.*other-group"):
        load_mobile_depth(root, "keyboard")
    with pytest.raises(ValueError, match="resolution must be one of"):
        load_mobile_depth(root, "metals", resolution="quarter")
    with pytest.raises(ValueError, match="no folder aligned-focus-stack/Aligned"):
        load_mobile_depth(tmp_path, "metals")

    def fails_with(lines, message):
        calib.write_text("\n".join(lines))
        with pytest.raises(ValueError, match=message):
            load_mobile_depth(root, "metals")

    fails_with(["30 0.25", "10 0.25x", "20 0.25", "0.5"],
               r"calibrated.txt, line 2: '0.25x' is not a number")
    fails_with(["30 0.25", "", "10 0.25 7", "20 0.25", "0.5"],
               r"calibrated.txt, line 3: expected two numbers")
    fails_with(["30 0.25", "10", "20 0.25", "0.5"], r"line 2: expected two numbers")
    fails_with(["30 0.25", "10 0.25", "20 0.25", "0.5 1"],
               r"line 4: the last line must hold the focal length alone")
    fails_with(["30 0.25", "10 -0.25", "20 0.25", "0.5"],
               r"line 2: '-0.25' must be a positive finite number")
    fails_with(["30 0.25", "10 0.3", "20 0.25", "0.5"], r"apertures differ \(\[0.25, 0.3\]\)")
    fails_with(["", "  "], "calibrated.txt: empty")
    fails_with(["0.5"], "no 'focus_distance aperture' lines")
    fails_with(["30 0.25", "10 0.25", "20 0.25", "40 0.25", "0.5"],
               r"has 4 focus distances but scene folder .* holds 3 slices")
    fails_with(["30 0.25", "10 0.25", "20 0.25", "50"],
               r"calibrated.txt: every focus distance must be beyond the focal length")
    calib.write_text("30 0.25\n10 0.25\n20 0.25\n0.5\n")
    _jpeg(folder / "a02.jpg", 0.6, shape=(SH, SW + 8))
    with pytest.raises(ValueError, match=r"differ in size.*a02.jpg: \(16, 32, 3\)"):
        load_mobile_depth(root, "metals")
    for p in folder.glob("a*.jpg"):
        p.unlink()
    with pytest.raises(ValueError, match=r"no aligned slices \(files a\*.jpg\)"):
        load_mobile_depth(root, "metals")
    other = root / "aligned-focus-stack" / "Aligned" / "other-group" / "metals"
    other.mkdir()
    with pytest.raises(ValueError, match="found in several sub-folders"):
        load_mobile_depth(root, "metals")
