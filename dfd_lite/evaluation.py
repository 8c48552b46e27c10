"""Evaluate the solver over a whole dataset, one scene per task, serially or with Dask.

Every scene is independent: render (or load) its stack, solve, compare with
the truth. :func:`evaluate` runs the scenes in this process
(``workers=0``), on a ``dask.distributed`` ``LocalCluster`` sized to the
machine (the default), or on any running Dask cluster (``scheduler=``
address, or a ``client=``). The scenes are described by small
:class:`SceneSpec` records, so only names and paths travel to the workers;
each worker loads its own data.

Results go to a folder, one JSON file per scene written atomically as the
scene finishes, so an interrupted run resumes where it stopped, a scene that
fails is recorded with its error, and no row is ever half-written. At the
end the rows are gathered into ``scenes.csv`` (and ``scenes.parquet`` when
pyarrow is installed) and the mean and median over the scenes, the way the
paper reports its tables, into ``summary.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import _validate as V
from .optics import Camera

__all__ = ["SceneSpec", "synthetic_scenes", "middlebury_scenes", "folder_scenes",
           "nyuv2_scenes", "evaluate_scene", "evaluate", "Evaluation", "METRICS", "RENDERS"]

#: Columns of a row that are measured (averaged in the summary).
METRICS = ("rmse", "mae", "absrel", "delta1", "delta2", "delta3", "aif_psnr", "seconds")

#: How a scene becomes a stack. ``"paper"`` is the solver's own model
#: (:func:`~dfd_lite.blur.render_stack`), ``"physical"`` the disc renderer
#: (:func:`~dfd_lite.render.render_physical`), off the inverse crime.
RENDERS = ("paper", "physical")

# The solver's settings when none are given: the library defaults, without the bar
_QUIET = {"progress": False}


@dataclass(frozen=True)
class SceneSpec:
    """A scene by name and recipe; :meth:`load` makes it (on a worker).

    Attributes
    ----------
    name : str
        Unique within a run; names the row file.
    kind : {"synthetic", "middlebury", "files", "nyuv2"}
    args : tuple
        What :meth:`load` needs: ``(seed, (H, W))``, ``((H, W),)``,
        ``(image_path, depth_path)`` or ``(mat_path, index, resolution)``.
    """

    name: str
    kind: str
    args: tuple = ()

    def load(self):
        """The :class:`~dfd_lite.data.Scene` this spec describes."""
        from . import data, datasets

        if self.kind == "synthetic":
            seed, shape = self.args
            return data.synthetic_scene(shape, seed=seed)
        if self.kind == "middlebury":
            return data.middlebury_scene(self.args[0])
        if self.kind == "files":
            return _load_pair(*self.args)
        if self.kind == "nyuv2":
            path, index, resolution = self.args
            return datasets.nyuv2_scene(path, index, resolution=resolution)
        raise ValueError(f"unknown scene kind {self.kind!r}")


def synthetic_scenes(count, *, shape=(96, 128), first_seed=0):
    """``count`` synthetic scenes (:func:`~dfd_lite.data.synthetic_scene`), seeds
    ``first_seed, ...``."""
    count = V.as_positive_int(count, "count")
    first_seed = V.as_seed(first_seed, "first_seed")
    shape = tuple(int(v) for v in shape)
    return [SceneSpec(f"synthetic-{s:04d}", "synthetic", (s, shape))
            for s in range(first_seed, first_seed + count)]


def middlebury_scenes(*, shape=(240, 320)):
    """The bundled Middlebury scene (:func:`~dfd_lite.data.middlebury_scene`) as a one-scene
    dataset."""
    return [SceneSpec("middlebury-motorcycle", "middlebury", (tuple(int(v) for v in shape),))]


_DEPTH_SUFFIXES = ("_depth.npy", "_depth.png", "_depth.tif", "_depth.tiff")


def folder_scenes(folder):
    """Scenes from a folder of (image, depth) pairs.

    Every image ``NAME.png`` (or ``.jpg``, ``.tif``) pairs with a depth map
    ``NAME_depth.npy`` (metres) or ``NAME_depth.png``/``.tif`` (16-bit,
    millimetres). Images without a depth map are refused by name.
    """
    from .io import image_files

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"dataset folder {folder}: not found (or not a folder)")
    specs = []
    for image in image_files(folder):
        if image.stem.endswith("_depth"):
            continue
        depths = [folder / (image.stem + s) for s in _DEPTH_SUFFIXES
                  if (folder / (image.stem + s)).is_file()]
        if not depths:
            raise ValueError(f"dataset folder {folder}: image {image.name} has no depth map "
                             f"({image.stem}_depth.npy in metres or {image.stem}_depth.png "
                             f"in millimetres)")
        specs.append(SceneSpec(image.stem, "files", (str(image), str(depths[0]))))
    if not specs:
        raise ValueError(f"dataset folder {folder}: no (image, NAME_depth) pairs")
    return specs


def nyuv2_scenes(path, *, indices=None, resolution="half"):
    """Scenes of NYUv2's labeled ``.mat`` (:func:`~dfd_lite.datasets.nyuv2_scene`); default all
    of them."""
    from .datasets import nyuv2_count

    count = nyuv2_count(path)
    indices = range(count) if indices is None else [int(i) for i in indices]
    for i in indices:
        if not 0 <= i < count:
            raise ValueError(f"index {i} is out of range: {path} holds {count} images")
    return [SceneSpec(f"nyuv2-{i:04d}", "nyuv2", (str(path), i, resolution)) for i in indices]


def _load_pair(image_path, depth_path):
    from .data import Scene
    from .io import read_depth, read_image

    aif = read_image(image_path)
    depth = read_depth(depth_path)
    if depth.shape != aif.shape[:2]:
        raise ValueError(f"depth {depth_path} is {depth.shape} but image {image_path} is "
                         f"{aif.shape[:2]}")
    return Scene(Path(image_path).stem, aif, depth, np.ones(depth.shape, dtype=bool))


def evaluate_scene(spec: SceneSpec, camera: Camera, *, render="paper", noise_std=0.0,
                   seed=0, solve_options=None):
    """Render, solve and score one scene; never raises for a bad scene.

    Returns
    -------
    dict
        ``name``, ``status`` (``"ok"`` or ``"error"``), ``error`` (the
        message, empty when ok), the :data:`METRICS` (NaN on error),
        ``height``, ``width``, ``noise_std_estimated``, ``residual_rms``
        (how closely the model explains the stack:
        :attr:`~dfd_lite.solve.SolveResult.residual_rms`), ``restarted``
        (True when the solve's model check found model error and started
        again with priors: ``solve(model_check=True)``), ``worker`` (the
        process id) and ``settings`` (JSON).
    """
    from .blur import render_stack
    from .metrics import depth_metrics, psnr
    from .render import render_physical
    from .solve import solve

    options = {**_QUIET, **(solve_options or {})}
    row = {"name": spec.name, "status": "ok", "error": "",
           **{m: float("nan") for m in METRICS}, "height": 0, "width": 0,
           "noise_std_estimated": float("nan"), "residual_rms": float("nan"),
           "restarted": False, "worker": os.getpid(),
           "settings": json.dumps({"render": render, "noise_std": noise_std, "seed": seed,
                                   "camera": asdict(camera), **options}, sort_keys=True,
                                  default=str)}
    t0 = time.perf_counter()
    try:
        scene = spec.load()
        if render == "physical":
            stack = render_physical(scene.aif, scene.depth, camera.with_psf("disc"),
                                    read_noise=noise_std, seed=seed)
        else:
            stack = render_stack(scene.aif, scene.depth, camera, noise_std=noise_std, seed=seed)
        result = solve(stack, camera, **options)
        scores = depth_metrics(result.depth, scene.depth, mask=scene.valid)
        row.update(scores)
        row["aif_psnr"] = psnr(np.clip(result.aif, 0, 1), scene.aif)
        row["height"], row["width"] = (int(v) for v in scene.depth.shape)
        row["noise_std_estimated"] = float(result.noise_std)
        row["residual_rms"] = float(result.residual_rms)
        row["restarted"] = result.restarted
    except Exception as exc:  # a bad scene is a row, not the end of the run
        row["status"] = "error"
        last = traceback.extract_tb(exc.__traceback__)[-1]
        row["error"] = (f"{type(exc).__name__}: {' '.join(str(exc).split())} "
                        f"({Path(last.filename).name}:{last.lineno})")
    row["seconds"] = time.perf_counter() - t0
    return row


@dataclass
class Evaluation:
    """What :func:`evaluate` produced.

    Attributes
    ----------
    rows : list of dict
        One per scene (see :func:`evaluate_scene`), in the order of the specs.
    summary : list of dict
        Per metric: ``metric``, ``mean``, ``median``, ``scenes`` (the
        successful ones counted).
    out : Path
        The results folder.
    computed, resumed, failed : list of str
        Scenes computed in this run, taken from an earlier one, and failed.
    dashboard : str or None
        The Dask dashboard's address, when there was one.
    """

    rows: list
    summary: list
    out: Path
    computed: list = field(default_factory=list)
    resumed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    dashboard: str = None


_ROW_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _row_path(out, name):
    return out / "rows" / (_ROW_NAME.sub("_", name) + ".json")


def _write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_row(path):
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None   # unreadable: computed again
    return row if isinstance(row, dict) and "status" in row else None


def evaluate(scenes, camera: Camera, *, out, render="paper", noise_std=0.0, seed=0,
             solve_options=None, workers=None, scheduler=None, client=None, limit=None,
             retry_failed=False, resources=None, progress=True):
    """Evaluate the solver on every scene; rows written as they finish.

    Parameters
    ----------
    scenes : sequence of SceneSpec
        From :func:`synthetic_scenes`, :func:`middlebury_scenes`,
        :func:`folder_scenes` or :func:`nyuv2_scenes` (names must be unique).
    camera : Camera
        The optics the stacks are rendered with and solved with.
    out : str or Path
        Results folder: ``rows/NAME.json`` per scene, then ``scenes.csv``
        (and ``scenes.parquet``) and ``summary.csv``.
    render : {"paper", "physical"}
        The solver's own model, or the physical disc renderer.
    noise_std : float
        Gaussian noise added to every stack (image units).
    seed : int
        Seed of the noise.
    solve_options : dict, optional
        Keyword arguments of :func:`~dfd_lite.solve.solve` (``num_epochs``, ...).
    workers : int, optional
        ``0``: run in this process, no Dask. Otherwise the size of the
        ``LocalCluster`` to start (processes of one thread each, Numba held
        to one thread per process so the cores are not oversubscribed);
        default: one per core. Ignored with ``scheduler`` or ``client``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``). Start
        its workers with one thread each and ``NUMBA_NUM_THREADS=1`` in
        their environment, as the ``LocalCluster`` here is: the variable is
        only set on a cluster this function starts.
    client : distributed.Client, optional
        A client to use (and leave open).
    limit : int, optional
        Only the first ``limit`` scenes.
    retry_failed : bool
        Compute again the scenes an earlier run recorded as failed
        (default: keep their rows; finished scenes are never recomputed).
    resources : dict, optional
        Dask worker resources each scene needs, e.g. ``{"GPU": 1}`` with
        workers started as ``dask worker ADDRESS --resources "GPU=1"``, so
        that every GPU runs one solve at a time (pass
        ``solve_options={"backend": "cuda"}``).
    progress : bool
        Dask's progress bar (or tqdm when serial).

    Returns
    -------
    Evaluation
    """
    V.check_camera(camera)
    specs = list(scenes)
    if not specs or not all(isinstance(s, SceneSpec) for s in specs):
        raise TypeError("scenes must be a non-empty sequence of SceneSpec")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("scene names must be unique")
    if render not in RENDERS:
        raise ValueError(f"render must be one of {RENDERS}, got {render!r}")
    noise_std = V.as_real(noise_std, "noise_std", at_least=0.0)
    if limit is not None:
        specs = specs[:V.as_positive_int(limit, "limit")]
    if workers is not None:
        workers = V.as_positive_int(workers, "workers", minimum=0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    done = {}
    for spec in specs:
        row = _read_row(_row_path(out, spec.name))
        if row is not None and (row["status"] == "ok" or not retry_failed):
            done[spec.name] = row
    todo = [s for s in specs if s.name not in done]
    task = dict(render=render, noise_std=noise_std, seed=seed, solve_options=solve_options)

    def record(row):
        _write_atomic(_row_path(out, row["name"]), json.dumps(row, indent=1) + "\n")

    dashboard = None
    if todo and workers == 0 and scheduler is None and client is None:
        iterator = todo
        if progress:
            from tqdm.auto import tqdm
            iterator = tqdm(todo, desc="dfd_lite.evaluate", unit="scene")
        for spec in iterator:
            record(evaluate_scene(spec, camera, **task))
    elif todo:
        dashboard = _run_dask(todo, camera, task, record, workers=workers, scheduler=scheduler,
                              client=client, resources=resources, progress=progress)

    rows = []
    for spec in specs:
        row = _read_row(_row_path(out, spec.name))
        if row is None:
            raise RuntimeError(f"scene {spec.name}: no result was recorded")
        rows.append(row)
    summary = summarize(rows)
    _write_tables(out, rows, summary)
    return Evaluation(rows=rows, summary=summary, out=out,
                      computed=[s.name for s in todo], resumed=list(done),
                      failed=[r["name"] for r in rows if r["status"] != "ok"],
                      dashboard=dashboard)


def _run_dask(todo, camera, task, record, *, workers, scheduler, client, resources, progress):
    """Run the scenes on Dask; ``record`` each row as it arrives. Returns the dashboard link."""
    from distributed import Client, LocalCluster, as_completed
    from distributed.diagnostics.progressbar import progress as dask_progress

    cluster = own_client = None
    if client is None:
        if scheduler is not None:
            client = own_client = Client(scheduler)
        else:
            n = workers or os.cpu_count() or 1
            # one thread per process, and Numba told so: n processes x the
            # machine's threads each would oversubscribe the cores n times
            single = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                      "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   env=single, dashboard_address=":0")
            client = own_client = Client(cluster)
    dashboard = getattr(client, "dashboard_link", None)
    try:
        if progress and dashboard:
            print(f"dfd_lite.evaluate: Dask dashboard at {dashboard}")
        # keys unique to this run, so a long-lived cluster never hands back a
        # result of an earlier run; retries cover a worker lost mid-scene (the
        # scheduler also reassigns what a dead worker held)
        token = uuid.uuid4().hex[:8]
        futures = client.map(evaluate_scene, todo, camera=camera, pure=False, retries=2,
                             key=[f"dfd-scene-{s.name}-{token}" for s in todo],
                             resources=resources, **task)
        # rows are recorded as scenes finish, in a thread, while the progress bar
        # (which blocks until the end) runs here: an interrupted run keeps them
        failure = []

        def collect():
            try:
                for _, row in as_completed(futures, with_results=True):
                    record(row)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        collector = threading.Thread(target=collect, name="dfd-evaluate-rows", daemon=True)
        collector.start()
        if progress:
            dask_progress(futures, notebook=False)
        collector.join()
        if failure:
            raise failure[0]
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
    return dashboard


def summarize(rows):
    """Mean and median of every metric over the successful rows."""
    ok = [r for r in rows if r.get("status") == "ok"]
    summary = []
    for metric in METRICS:
        values = np.array([float(r[metric]) for r in ok], dtype=np.float64)
        summary.append({"metric": metric,
                        "mean": float(values.mean()) if values.size else float("nan"),
                        "median": float(np.median(values)) if values.size else float("nan"),
                        "scenes": int(values.size)})
    return summary


_COLUMNS = ("name", "status", "error") + METRICS + ("height", "width", "noise_std_estimated",
                                                    "residual_rms", "restarted", "worker",
                                                    "settings")


def _write_tables(out, rows, summary):
    for name, table, columns in (("scenes.csv", rows, _COLUMNS),
                                 ("summary.csv", summary, ("metric", "mean", "median", "scenes"))):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
        _write_atomic(out / name, text.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    table = pa.Table.from_pylist([{c: r.get(c) for c in _COLUMNS} for r in rows])
    fd, tmp = tempfile.mkstemp(prefix=".scenes.parquet.", dir=out)
    os.close(fd)
    pq.write_table(table, tmp)
    os.replace(tmp, out / "scenes.parquet")
