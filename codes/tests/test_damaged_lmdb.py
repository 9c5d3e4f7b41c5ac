"""A damaged prepared dataset (a data.mdb cut short by an interrupted copy) is one line before any read,
for training and for a preparation that continues a partial output; the advice is to delete it."""
import os

from _eval_helpers import run_script
from _lmdb_helpers import write_kinds, write_photos


def _cut(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep) // 4096 * 4096)


def _one_line_exit_2(res, *parts):
    assert res.returncode == 2 and res.stderr.count("\n") == 1, (res.returncode, res.stderr[-2000:])
    assert all(p in res.stderr for p in parts), res.stderr


def test_training_on_a_truncated_data_file_is_one_line(tmp_path):
    out = str(tmp_path / "HR.lmdb")
    res = run_script("scripts/prepare_dataset.py", "--hr", write_photos(tmp_path / "hr", 4, 64), "--out", out,
                     "--workers", "1")
    assert res.returncode == 0, res.stderr
    _cut(os.path.join(out, "data.mdb"))
    opt = tmp_path / "o.yml"
    opt.write_text(f"name: cut\nscale: 4\ndevice: cpu\nnetwork_G: {{est_nf: 8, sr_nf: 8, n_stages: 2}}\n"
                   f"datasets:\n  train: {{dataroot_GT: {out}, GT_size: 32, batch_size: 2, n_workers: 1}}\n"
                   f"train: {{niter: 1}}\npath: {{experiments_root: {tmp_path / 'exp'}}}\n")
    res = run_script("train.py", "-opt", opt)
    _one_line_exit_2(res, f"{out}/data.mdb", "truncated", "copy it again or prepare the dataset again")
    assert not os.path.exists(tmp_path / "exp")


def test_continuing_a_preparation_on_a_truncated_partial_output_advises_deleting_it(tmp_path):
    hr = write_kinds(tmp_path / "hr", sixteen_bit=True)
    with open(os.path.join(hr, "e_bad.png"), "wb") as handle:
        handle.write(b"not a png")
    out = str(tmp_path / "HR.lmdb")
    args = ["--hr", hr, "--out", out, "--workers", "1"]
    res = run_script("scripts/prepare_dataset.py", *args)
    assert res.returncode == 2 and os.path.isdir(out + ".partial"), res.stderr
    os.remove(os.path.join(hr, "e_bad.png"))
    _cut(os.path.join(out + ".partial", "data.mdb"), 0.4)
    res = run_script("scripts/prepare_dataset.py", *args)
    _one_line_exit_2(res, f"{out}.partial", "damaged", f"delete {out}.partial")
    assert "same command again" not in res.stderr
