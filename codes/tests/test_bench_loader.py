"""benchmarks/bench_loader.py on tiny data: it runs on an image folder and on a prepared one, and its
JSON holds the figures (times are printed, never checked)."""
import json

from _eval_helpers import run_script
from _lmdb_helpers import authors_lmdb, write_photos


def test_bench_loader_writes_its_figures_for_a_folder_and_a_prepared_one(tmp_path):
    folder = write_photos(str(tmp_path / "hr"), 3, 48)
    prepared = authors_lmdb(folder, tmp_path / "hr.lmdb")
    for root, data_type in ((folder, "img"), (prepared, "lmdb")):
        out = tmp_path / f"{data_type}.json"
        proc = run_script("benchmarks/bench_loader.py", "--dataroot", root, "--scale", 4, "--gt_size", 32,
                          "--batch", 4, "--workers", 1, "--batches", 3, "--warmup", 1, "--device", "cpu",
                          "--json", out, timeout=240)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"{data_type} {root}: " in proc.stdout and "batches/s" in proc.stdout
        res = json.loads(out.read_text())
        assert res["data_type"] == data_type and res["images"] == 3 and res["repeat"] == 2  # 3 images, batch 4
        assert (res["batches"], res["warmup"], res["batch"], res["gt_size"], res["workers"]) == (3, 1, 4, 32, 1)
        assert res["output_shape"] == [4, 3, 32, 32] and res["transfer_dtype"] == "float32"  # CPU: float crops
        assert res["batches_per_s"] > 0 and res["ms_per_item"] > 0 and res["mb_per_s"] > 0
        assert abs(res["batches_per_s"] * res["seconds"] - 3) < 1e-6
        assert abs(res["ms_per_item"] * res["batches_per_s"] * 4 - 1e3) < 1e-6
        assert abs(res["mb_per_s"] - res["batches_per_s"] * 4 * 3 * 32 * 32 / 1e6) < 1e-9


def test_bench_loader_reports_bad_input_in_one_line(tmp_path):
    proc = run_script("benchmarks/bench_loader.py", "--dataroot", tmp_path / "missing", "--batches", 1)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
