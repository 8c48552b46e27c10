"""Dataset evaluation: serial and Dask runs agree, runs resume, bad scenes and dead workers do not stop them."""

import json
import os
import signal
import threading
import time

import distributed
import numpy as np
import pyarrow.parquet as pq
import pytest

import dfd_lite as dl
from dfd_lite import evaluation as ev
from dfd_lite import io

CAMERA = dl.Camera.nyuv2()
QUICK = dict(num_epochs=2, aif_num_iters=20, num_depths=30, backend="cpu")
# the columns that depend on when and where a scene ran
UNSTABLE = {"seconds", "worker"}


def _stable(rows):
    return [{k: v for k, v in r.items() if k not in UNSTABLE} for r in rows]


@pytest.fixture(scope="module")
def cluster():
    single = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, env=single,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    specs = ev.synthetic_scenes(4, shape=(32, 40))
    return ev.evaluate(specs, CAMERA, out=tmp_path_factory.mktemp("serial"), workers=0,
                       solve_options=QUICK, progress=False)


def test_serial_rows_are_real_scores(serial):
    assert [r["name"] for r in serial.rows] == [f"synthetic-000{i}" for i in range(4)]
    assert all(r["status"] == "ok" for r in serial.rows)
    # each row is the solver's error on that scene, recomputed here independently
    scene = dl.synthetic_scene((32, 40), seed=2)
    res = dl.solve(dl.render_stack(scene.aif, scene.depth, CAMERA), CAMERA, progress=False,
                   **QUICK)
    assert serial.rows[2]["rmse"] == pytest.approx(
        dl.depth_metrics(res.depth, scene.depth)["rmse"], rel=1e-6)
    assert serial.rows[2]["residual_rms"] == pytest.approx(res.residual_rms, rel=1e-6)
    assert not any(r["restarted"] for r in serial.rows)   # two epochs: no model check
    summary = {s["metric"]: s for s in serial.summary}
    rmse = [r["rmse"] for r in serial.rows]
    assert summary["rmse"]["mean"] == pytest.approx(np.mean(rmse))
    assert summary["rmse"]["median"] == pytest.approx(np.median(rmse))
    assert summary["rmse"]["scenes"] == 4
    table = (serial.out / "scenes.csv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("name,status,error,rmse")


def test_dask_table_equals_the_serial_one(serial, cluster, tmp_path):
    specs = ev.synthetic_scenes(4, shape=(32, 40))
    run = ev.evaluate(specs, CAMERA, out=tmp_path, client=cluster, solve_options=QUICK,
                      progress=False)
    assert _stable(run.rows) == _stable(serial.rows)
    # both worker processes took part
    assert len({r["worker"] for r in run.rows}) == 2
    assert os.getpid() not in {r["worker"] for r in run.rows}
    table = pq.read_table(tmp_path / "scenes.parquet").to_pylist()
    assert [t["rmse"] for t in table] == [r["rmse"] for r in run.rows]


def test_a_scheduler_address_runs_the_same(serial, cluster, tmp_path):
    # what --scheduler tcp://... does: a client of its own on a running cluster
    specs = ev.synthetic_scenes(2, shape=(32, 40))
    run = ev.evaluate(specs, CAMERA, out=tmp_path, scheduler=cluster.scheduler.address,
                      solve_options=QUICK, progress=False)
    assert _stable(run.rows) == _stable(serial.rows[:2])
    assert cluster.status == "running"    # the run closed its own client, not ours


def test_an_interrupted_run_resumes(serial, tmp_path):
    specs = ev.synthetic_scenes(4, shape=(32, 40))
    first = ev.evaluate(specs, CAMERA, out=tmp_path, workers=0, solve_options=QUICK,
                        progress=False, limit=2)
    assert first.computed == ["synthetic-0000", "synthetic-0001"]
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "rows").iterdir()}
    # what a run killed while writing leaves behind: a temporary file and a torn row
    (tmp_path / "rows" / ".synthetic-0002.json.abc").write_text('{"name": "synth')
    (tmp_path / "rows" / "synthetic-0003.json").write_text('{"name": "synthetic-0003", "st')
    second = ev.evaluate(specs, CAMERA, out=tmp_path, workers=0, solve_options=QUICK,
                         progress=False)
    assert second.resumed == ["synthetic-0000", "synthetic-0001"]
    assert second.computed == ["synthetic-0002", "synthetic-0003"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "rows").iterdir()
            if p.name in stamps} == stamps
    assert _stable(second.rows) == _stable(serial.rows)


def test_a_bad_scene_is_reported_and_the_others_finish(cluster, tmp_path):
    data = tmp_path / "pairs"
    data.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        scene = dl.synthetic_scene((32, 40), seed=i)
        io.write_png(data / f"{name}.png", np.round(scene.aif * 255).astype(np.uint8))
        np.save(data / f"{name}_depth.npy", scene.depth)
    np.save(data / "b_depth.npy", np.zeros((32, 40), np.float32))    # no valid depth
    specs = ev.folder_scenes(data)
    assert [s.name for s in specs] == ["a", "b", "c"]
    run = ev.evaluate(specs, CAMERA, out=tmp_path / "out", client=cluster, solve_options=QUICK,
                      progress=False)
    status = {r["name"]: r for r in run.rows}
    assert status["a"]["status"] == status["c"]["status"] == "ok"
    assert status["b"]["status"] == "error" and "not positive finite depths" in status["b"]["error"]
    assert run.failed == ["b"]
    assert {s["metric"]: s for s in run.summary}["rmse"]["scenes"] == 2
    # a recorded failure is kept on resume, and computed again when asked
    again = ev.evaluate(specs, CAMERA, out=tmp_path / "out", workers=0, solve_options=QUICK,
                        progress=False)
    assert again.computed == []
    retried = ev.evaluate(specs, CAMERA, out=tmp_path / "out", workers=0, solve_options=QUICK,
                          progress=False, retry_failed=True)
    assert retried.computed == ["b"]


def test_a_worker_killed_mid_run_loses_no_scene(cluster, tmp_path):
    specs = ev.synthetic_scenes(4, shape=(64, 80), first_seed=10)
    slow = dict(QUICK, num_epochs=3, aif_num_iters=60)
    pids = cluster.run(os.getpid)
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = [addr for addr, keys in cluster.processing().items()
                    if any("dfd-scene" in str(k) for k in keys)]
            if busy and addr_known(busy[0]):
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
            time.sleep(0.05)

    def addr_known(addr):
        return addr in pids

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    run = ev.evaluate(specs, CAMERA, out=tmp_path, client=cluster, solve_options=slow,
                      progress=False)
    killer.join()
    assert killed, "no worker was busy to kill"
    assert [r["status"] for r in run.rows] == ["ok"] * 4
    assert killed[0] not in {r["worker"] for r in run.rows}
    # the Nanny restarts the worker: the cluster is whole for the next test
    cluster.wait_for_workers(2, timeout=60)


def test_evaluate_refuses_bad_arguments(tmp_path):
    specs = ev.synthetic_scenes(2, shape=(32, 40))
    with pytest.raises(TypeError, match="SceneSpec"):
        ev.evaluate([], CAMERA, out=tmp_path)
    with pytest.raises(ValueError, match="unique"):
        ev.evaluate(specs + specs[:1], CAMERA, out=tmp_path)
    with pytest.raises(ValueError, match="render must be one of"):
        ev.evaluate(specs, CAMERA, out=tmp_path, render="magic")
    with pytest.raises(ValueError, match="noise_std"):
        ev.evaluate(specs, CAMERA, out=tmp_path, noise_std=-1.0)
    with pytest.raises(ValueError, match="no depth map"):
        (tmp_path / "x.png").write_bytes(b"")
        ev.folder_scenes(tmp_path)
    assert not (tmp_path / "rows").exists()


def test_rows_are_written_atomically(tmp_path):
    path = tmp_path / "rows" / "a.json"
    ev._write_atomic(path, json.dumps({"status": "ok"}))
    with pytest.raises(TypeError):
        ev._write_atomic(path, None)     # a failed write leaves the old row whole
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_the_command_line(tmp_path, capsys):
    from dfd_lite import cli

    out = tmp_path / "results"
    assert cli.main(["evaluate", "synthetic:2", "--size", "32", "40", "--epochs", "1",
                     "--workers", "0", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 scenes: 2 computed, 0 from an earlier run, 0 failed" in printed
    rows = (out / "scenes.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("synthetic-0000,ok,")
    # again: nothing is recomputed
    assert cli.main(["evaluate", "synthetic:2", "--size", "32", "40", "--epochs", "1",
                     "--workers", "0", "--quiet", "--out", str(out)]) == 0
    assert "0 computed, 2 from an earlier run" in capsys.readouterr().out
    for bad, message in ((["synthetic:0"], "N must be >= 1"),
                         (["nowhere"], "not synthetic:N, middlebury, a folder or a .mat"),
                         (["synthetic:2", "--workers", "-1"], "--workers must be >= 0"),
                         (["synthetic:2", "--size", "4", "4"], "--size must be at least")):
        assert cli.main(["evaluate", *bad, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_rows_say_when_the_model_check_started_again(tmp_path):
    # disc-blurred (physical) stacks solved with the paper's Gaussian: the check
    # finds the model error; the same scenes rendered with the paper's model: no
    specs = ev.synthetic_scenes(2, shape=(32, 40))
    options = {**QUICK, "num_epochs": 4}
    rows = {render: ev.evaluate(specs, CAMERA, out=tmp_path / render, render=render, workers=0,
                                solve_options=options, progress=False).rows
            for render in ("paper", "physical")}
    assert [r["restarted"] for r in rows["physical"]] == [True, True]
    assert [r["restarted"] for r in rows["paper"]] == [False, False]
    table = (tmp_path / "physical" / "scenes.csv").read_text().splitlines()
    assert ",restarted," in table[0]
