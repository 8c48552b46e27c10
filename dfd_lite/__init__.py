"""dfd_lite: depth from defocus by direct optimization.

A focal stack and the camera's optics in; a depth map and an all-in-focus
image out, by alternating a box-constrained least-squares solve for the
image (FISTA) with a per-pixel search for the depth.

The modules, one concept each: :mod:`~dfd_lite.optics` (thin lens),
:mod:`~dfd_lite.blur` (the forward model), :mod:`~dfd_lite.aif` (image
step), :mod:`~dfd_lite.depth` (depth step), :mod:`~dfd_lite.solve`
(alternation), :mod:`~dfd_lite.fill` (filling unsure depths), :mod:`~dfd_lite.metrics`, :mod:`~dfd_lite.data` and
:mod:`~dfd_lite.plotting`; focal stacks on disk and the public data sets
(:mod:`~dfd_lite.io`, :mod:`~dfd_lite.datasets`), focus breathing
(:mod:`~dfd_lite.align`), whole-dataset runs (:mod:`~dfd_lite.evaluation`)
and the ``dfd-lite`` command (:mod:`~dfd_lite.cli`). The algorithms are written once and run on an
engine from :mod:`~dfd_lite.engines` (Numba on the CPU, numba-cuda on a
GPU). :mod:`dfd_lite.teaching` holds the course tools.
"""

from .optics import Camera, coc_diameter, coc_radius, default_kernel_size, psf_radius
from .blur import (BlurOperator, DotTestResult, blur_constant, blur_matrix, dot_test,
                   gaussian_weights, psf_weights, render_stack)
from .render import render_physical, thin_lens_magnification
from .calibrate import Calibration, calibrate_blur
from .noise import estimate_noise
from .aif import FistaResult, fista, focus_stack, lipschitz_constant, sharpness, tv_deconvolve
from .depth import (DepthResult, depth_candidates, depth_loss_volume, depth_step,
                    golden_section_refine, golden_section_search, grid_search, pixel_loss)
from .solve import SolveResult, StepRecord, solve
from .fill import fill_depth, weighted_median_depth
from .metrics import depth_metrics, psnr
from .data import (Scene, focal_stack, load_stack, middlebury_scene, save_stack,
                   synthetic_scene)
from .datasets import (MOBILE_DEPTH_SCENES, load_mobile_depth, load_nyuv2, nyuv2_camera,
                       nyuv2_count, nyuv2_scene)
from .io import load_stack_folder, read_camera, read_image, save_stack_folder
from .align import Alignment, align_stack
from .evaluation import Evaluation, SceneSpec, evaluate
from .engines import cuda_available

__version__ = "0.2.0"

__all__ = [
    "Camera", "coc_diameter", "coc_radius", "default_kernel_size", "psf_radius",
    "BlurOperator", "DotTestResult", "blur_constant", "blur_matrix", "dot_test",
    "gaussian_weights", "psf_weights", "render_stack", "render_physical",
    "thin_lens_magnification", "Calibration", "calibrate_blur", "estimate_noise",
    "FistaResult", "fista", "focus_stack", "lipschitz_constant", "sharpness", "tv_deconvolve",
    "DepthResult", "depth_candidates", "depth_loss_volume", "depth_step",
    "golden_section_refine", "golden_section_search", "grid_search", "pixel_loss",
    "SolveResult", "StepRecord", "solve", "fill_depth", "weighted_median_depth",
    "depth_metrics", "psnr",
    "Scene", "focal_stack", "load_stack", "middlebury_scene", "save_stack", "synthetic_scene",
    "MOBILE_DEPTH_SCENES", "load_mobile_depth", "load_nyuv2", "nyuv2_camera", "nyuv2_count",
    "nyuv2_scene", "load_stack_folder", "read_camera", "read_image", "save_stack_folder",
    "Alignment", "align_stack", "Evaluation", "SceneSpec", "evaluate",
    "cuda_available",
]
