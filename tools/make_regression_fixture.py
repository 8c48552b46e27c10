"""Record the outputs of the solver's building blocks on two small scenes.

``tests/data/regression.npz`` was written by this script on the package
*before* the engine restructuring (commit 3f15b63; its ``solve`` spelled
``num_epochs`` as ``epochs``), so that ``tests/test_regression.py`` can
prove the restructured code computes the same numbers. Rerunning it overwrites the fixture with the current code's
outputs: do that only on purpose, when a change of behaviour is intended.

    python tools/make_regression_fixture.py
"""

from pathlib import Path

import numpy as np

import dfd_lite as dl

K = 7
SCENES = {
    "synthetic": lambda: dl.synthetic_scene((24, 32), seed=3),
    "middlebury": lambda: dl.middlebury_scene((24, 32)),
}


def record(name, make_scene):
    cam = dl.Camera.nyuv2()
    scene = make_scene()
    stack = dl.render_stack(scene.aif, scene.depth, cam, kernel_size=K, noise_std=0.005,
                            seed=7, backend="cpu")
    op = dl.BlurOperator(scene.depth, cam, kernel_size=K, backend="cpu")
    cands = dl.depth_candidates((0.5, 8.0), 24)
    out = {
        "aif": scene.aif, "depth": scene.depth, "stack": stack,
        "forward": op.forward(scene.aif), "adjoint": op.adjoint(stack),
        "fista": dl.fista(op, stack, num_iters=30).aif,
    }
    previous = np.full(scene.depth.shape, 2.0, dtype=np.float32)
    for window in (1, 3):
        res = dl.depth_step(scene.aif, stack, cam, cands, kernel_size=K, window=window,
                            previous_depth=previous, backend="cpu")
        out[f"depth_step_w{window}_depth"] = res.depth
        out[f"depth_step_w{window}_loss"] = res.loss
        out[f"depth_step_w{window}_index"] = res.grid_index
    res = dl.solve(stack, cam, kernel_size=K, num_depths=24, depth_range=(0.5, 8.0),
                   num_epochs=2, window=3, tv_weight=0.0, progress=False, backend="cpu")
    out["solve_depth"] = res.depth
    out["solve_aif"] = res.aif
    out["solve_losses"] = np.asarray(res.losses)
    return {f"{name}/{key}": np.asarray(val) for key, val in out.items()}


def main():
    arrays = {}
    for name, make_scene in SCENES.items():
        arrays.update(record(name, make_scene))
    path = Path(__file__).resolve().parents[1] / "tests" / "data" / "regression.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
