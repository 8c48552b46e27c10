"""The dfd-lite command: render -> solve round trip, its outputs, and one-line errors on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dfd_lite as dl
from dfd_lite import cli, io
from dfd_lite.solve import MODEL_ERROR_RATIO, noise_floor

SHAPE = (48, 64)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """An image, its depth (.npy and 16-bit PNG in mm) and a camera file."""
    folder = tmp_path_factory.mktemp("scene")
    scene = dl.synthetic_scene(SHAPE, seed=1)
    io.write_png(folder / "image.png", np.round(scene.aif * 255).astype(np.uint8))
    np.save(folder / "depth.npy", scene.depth)
    io.write_png(folder / "depth_mm.png", np.round(scene.depth * 1000).astype(np.uint16))
    io.write_camera(folder / "camera.toml", dl.Camera.nyuv2(), depth_range=(0.5, 8.0))
    return folder, scene


@pytest.fixture(scope="module")
def stack_dir(scene_files, tmp_path_factory):
    folder, _ = scene_files
    out = tmp_path_factory.mktemp("render") / "stack"
    assert cli.main(["render", str(folder / "image.png"), str(folder / "depth.npy"),
                     "--camera", str(folder / "camera.toml"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def solved(stack_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("solve") / "result"
    assert cli.main(["solve", str(stack_dir), "--out", str(out), "--epochs", "4",
                     "--quiet", "--backend", "cpu"]) == 0
    return out


def test_render_writes_a_stack_folder_that_loads(stack_dir, scene_files):
    folder, scene = scene_files
    stack, cam, depth_range = io.load_stack_folder(stack_dir)
    assert cam == dl.Camera.nyuv2() and depth_range == (0.5, 8.0)
    expected = dl.render_stack(io.read_image(folder / "image.png"), scene.depth, cam)
    np.testing.assert_allclose(stack, np.clip(expected, 0, 1), atol=1e-4)
    # the depth as a 16-bit PNG in millimetres gives the same stack
    out = stack_dir.parent / "from_png"
    assert cli.main(["render", str(folder / "image.png"), str(folder / "depth_mm.png"),
                     "--camera", str(folder / "camera.toml"), "--out", str(out)]) == 0
    np.testing.assert_allclose(io.load_stack_folder(out)[0], stack, atol=2e-3)


def test_round_trip_recovers_the_depth(solved, scene_files):
    _, scene = scene_files
    depth = np.load(solved / "depth.npy")
    assert depth.dtype == np.float32 and depth.shape == SHAPE
    # measured 0.15 m after 4 epochs; the scene spans 1.2-5.5 m
    assert dl.depth_metrics(depth, scene.depth)["rmse"] < 0.3


def test_solve_outputs(solved):
    depth = np.load(solved / "depth.npy")
    millimetres = io.read_image(solved / "depth.png") * 65535
    np.testing.assert_allclose(millimetres / 1000.0, depth, atol=6e-4)
    assert io.read_image(solved / "depth_color.png").shape == SHAPE + (3,)
    assert io.read_image(solved / "aif.png").shape == SHAPE + (3,)
    confidence = io.read_image(solved / "confidence.png")
    std = np.load(solved / "depth_std.npy")
    # white where the uncertainty is smallest, darker where it is larger
    assert confidence.shape == SHAPE
    assert confidence[std <= np.percentile(std, 10)].mean() > \
        confidence[std >= np.percentile(std, 90)].mean()
    assert io.read_image(solved / "report.png").shape[0] > 200
    report = json.loads((solved / "result.json").read_text())
    assert report["settings"]["num_epochs"] == 4 and report["camera"]["psf"] == "gaussian"
    assert report["spread"] == "gather"     # the paper's Gaussian: no scatter stage
    assert len(report["alignment"]["scale"]) == 5
    # no breathing in this stack: the estimate moves nothing by half a pixel,
    # so no slice is resampled (which would blur it)
    assert report["alignment"]["resampled"] == [False] * 5
    assert [h["step"] for h in report["history"][:3]] == ["init", "depth", "aif"]
    assert set(report["timings_s"]) >= {"load", "align", "solve", "write"}
    assert report["noise_std"] < 0.002    # 16-bit files of a noise-free render
    # the stack was rendered with the camera's own model: the fit is within the noise
    assert 0 < report["residual_rms"] < MODEL_ERROR_RATIO * noise_floor(report["noise_std"])
    assert not any("the model explains" in note for note in report["warnings"])
    assert not any(p.name.startswith(".") for p in solved.parent.iterdir())


def test_a_wrong_psf_is_reported(tmp_path):
    # a disc-blurred stack described as the paper's Gaussian: the fit's residual
    # stays well above the noise, and the report says so
    scene = dl.synthetic_scene(SHAPE, seed=1)
    disc_blurred = dl.render_physical(scene.aif, scene.depth, dl.Camera.nyuv2().with_psf("disc"))
    io.save_stack_folder(tmp_path / "stack", disc_blurred, dl.Camera.nyuv2(),
                         depth_range=(0.5, 8.0))
    out = tmp_path / "result"
    assert cli.main(["solve", str(tmp_path / "stack"), "--out", str(out), "--epochs", "4",
                     "--quiet", "--backend", "cpu"]) == 0
    report = json.loads((out / "result.json").read_text())
    assert report["residual_rms"] > MODEL_ERROR_RATIO * noise_floor(report["noise_std"])
    assert any("the model explains the stack" in note and "PSF" in note
               and "started again with priors" in note for note in report["warnings"])


def test_max_size_downsamples_and_scales_pixels(stack_dir, tmp_path):
    out = tmp_path / "small"
    assert cli.main(["solve", str(stack_dir), "--out", str(out), "--epochs", "1", "--quiet",
                     "--max-size", "32", "--no-align", "--psf", "disc"]) == 0
    report = json.loads((out / "result.json").read_text())
    assert np.load(out / "depth.npy").shape == (24, 32)
    assert report["camera"]["pixel_size"] == pytest.approx(2 * 1.2e-5)
    assert report["camera"]["psf"] == "disc" and report["alignment"] is None


def test_breathing_is_found_and_undone(tmp_path):
    # registration needs some size: 96 x 128 (48 x 64 is too small to align)
    scene = dl.synthetic_scene((96, 128), seed=1)
    np.save(tmp_path / "depth.npy", scene.depth)
    io.write_png(tmp_path / "image.png", np.round(scene.aif * 255).astype(np.uint8))
    io.write_camera(tmp_path / "camera.toml", dl.Camera.nyuv2(), depth_range=(0.5, 8.0))
    stack_dir = tmp_path / "breathing"
    assert cli.main(["render", str(tmp_path / "image.png"), str(tmp_path / "depth.npy"),
                     "--camera", str(tmp_path / "camera.toml"), "--out", str(stack_dir),
                     "--physical", "--breathing", "--noise", "0.005", "--quiet"]) == 0
    out = tmp_path / "solved"
    assert cli.main(["solve", str(stack_dir), "--out", str(out), "--epochs", "1",
                     "--quiet"]) == 0
    report = json.loads((out / "result.json").read_text())
    # the noise is that of the photographs, not of the resampled (smoother) slices
    photographed = io.load_stack_folder(stack_dir)[0]
    assert report["noise_std"] == pytest.approx(dl.estimate_noise(photographed), rel=1e-6)
    assert 0.004 < report["noise_std"] < 0.006
    alignment = report["alignment"]
    true = dl.thin_lens_magnification(dl.Camera.nyuv2())
    # the nearest-focused slice is the most magnified: the reference
    assert alignment["reference"] == 0
    # relative to it, the farthest is 4.2 % smaller: a corner moves 1.7 px
    assert alignment["scale"][-1] == pytest.approx(true[-1] / true[0], abs=0.01)
    assert alignment["resampled"][-1] and not alignment["resampled"][0]
    assert alignment["largest_move_px"][-1] > 1.0


def _fails(args, capsys, message, out=None):
    code = cli.main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("dfd-lite: error:"), err
    assert message in err, err
    if out is not None:
        assert not Path(out).exists()


def _copy_stack(stack_dir, dest):
    dest.mkdir()
    for p in stack_dir.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def test_bad_stack_folders_fail_with_one_line(stack_dir, tmp_path, capsys):
    out = tmp_path / "out"
    solve = ["solve", None, "--out", str(out), "--quiet"]

    def run(folder, message):
        solve[1] = str(folder)
        _fails(solve, capsys, message, out)

    run(tmp_path / "absent", "not found")
    bad = _copy_stack(stack_dir, tmp_path / "nocam")
    (bad / "camera.toml").unlink()
    run(bad, "camera.toml: not found")
    bad = _copy_stack(stack_dir, tmp_path / "malformed")
    (bad / "camera.toml").write_text("focal_length = [\n")
    run(bad, "not valid TOML")
    text = (stack_dir / "camera.toml").read_text()
    for name, old, new, message in (
            ("nofocal", "focal_length = 0.05\n", "", "focal_length is missing"),
            ("negative", "[1.0, 1.5", "[-1.0, 1.5", "focus_distances must be positive"),
            ("inside", "[1.0, 1.5", "[0.01, 1.5", "beyond the focal length"),
            ("count", "[1.0, 1.5,", "[1.5,", "images lists 5 files but focus_distances has 4")):
        bad = _copy_stack(stack_dir, tmp_path / name)
        (bad / "camera.toml").write_text(text.replace(old, new))
        run(bad, message)
    bad = _copy_stack(stack_dir, tmp_path / "size")
    io.write_png(bad / "slice_03.png", np.zeros((40, 64, 3), np.uint16))
    run(bad, "differ in size")
    bad = _copy_stack(stack_dir, tmp_path / "unreadable")
    (bad / "slice_01.png").write_bytes(b"\x89PNG garbage")
    run(bad, "slice_01.png: cannot be read")
    bad = _copy_stack(stack_dir, tmp_path / "one")
    one = dl.Camera(0.05, 8.0, 1.2e-5, (2.0,))
    io.write_camera(bad / "camera.toml", one, images=["slice_00.png"])
    run(bad, "at least 2 slices")
    _fails(["solve", str(stack_dir), "--out", str(out), "--max-size", "8"], capsys,
           "--max-size", out)
    _fails(["solve", str(stack_dir), "--out", str(out), "--depth-range", "3", "1"], capsys,
           "depth_range", out)
    (tmp_path / "file").write_text("x")
    _fails(["solve", str(stack_dir), "--out", str(tmp_path / "file")], capsys,
           "not a folder")


def test_bad_render_input_fails_with_one_line(scene_files, tmp_path, capsys):
    folder, _ = scene_files
    out = tmp_path / "stack"
    cam = str(folder / "camera.toml")
    np.save(tmp_path / "small.npy", np.ones((10, 10), np.float32))
    _fails(["render", str(folder / "image.png"), str(tmp_path / "small.npy"), "--camera", cam,
            "--out", str(out)], capsys, "must match", out)
    np.save(tmp_path / "zero.npy", np.zeros(SHAPE, np.float32))
    _fails(["render", str(folder / "image.png"), str(tmp_path / "zero.npy"), "--camera", cam,
            "--out", str(out)], capsys, "3072 pixels are not positive", out)
    _fails(["render", str(folder / "image.png"), str(folder / "depth.npy"), "--camera", cam,
            "--out", str(out), "--breathing"], capsys, "--breathing needs --physical", out)
    _fails(["render", str(folder / "image.png"), str(folder / "image.png"), "--camera", cam,
            "--out", str(out)], capsys, "16-bit", out)
    _fails(["render", str(folder / "missing.png"), str(folder / "depth.npy"), "--camera", cam,
            "--out", str(out)], capsys, "no such image file", out)


def test_staging_writes_nothing_when_interrupted(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with cli._Staging(out) as staging:
            (staging.dir / "depth.npy").write_bytes(b"partial")
            raise RuntimeError("failed half-way")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_module_and_console_script(stack_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "dfd_lite", "--version"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"dfd-lite {dl.__version__}"
    script = Path(sys.executable).parent / "dfd-lite"
    assert script.exists(), "pip install -e . installs the dfd-lite script"
    done = subprocess.run([str(script), "solve", str(stack_dir), "--out", str(tmp_path / "o"),
                           "--depth-range", "0", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("dfd-lite: error: depth_range")
    assert not (tmp_path / "o").exists()


def test_tiny_stacks_are_solved_without_alignment(stack_dir, tmp_path, capsys):
    out = tmp_path / "tiny"
    assert cli.main(["solve", str(stack_dir), "--out", str(out), "--epochs", "1",
                     "--max-size", "24", "--backend", "cpu"]) == 0
    assert "cannot be registered; not aligned" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["alignment"] is None
