"""ship_model.py: float16 copy, the Set5 check, the manifest and the README table (tiny network)."""
import hashlib
import json
import os

import pytest
import torch
from _eval_helpers import run_script, smooth_image, tiny_model

from models.networks import load_network, read_checkpoint, save_network
from utils.image_io import write_image

README = "# x\n\n## Results\n\n<!-- shipped-results:start -->\nnothing yet\n<!-- shipped-results:end -->\n\nafter\n"


def _setup(tmp_path):
    trained = tmp_path / "exp" / "latest_G.pth"
    net = tiny_model(scale=4, seed=3)
    save_network(net, str(trained), {"iteration": 120, "epoch": 3, "options": "KULNet_x4_somewhere"})
    for folder, n in (("Set5", 2), ("Set14", 1)):
        for i in range(n):
            write_image(str(tmp_path / folder / f"im{i}.png"), smooth_image(44, 52, seed=20 + i))
    (tmp_path / "README.md").write_text(README)
    return net, trained


def _ship(tmp_path, trained, *extra):
    return run_script("scripts/ship_model.py", trained, "--set5", tmp_path / "Set5", "--set14", tmp_path / "Set14",
                      "--out", tmp_path / "pretrained" / "KULNet_x4.pth", "--manifest",
                      tmp_path / "pretrained" / "manifest.json", "--readme", tmp_path / "README.md",
                      "--device", "cpu", "--train_seconds", "60", "--hardware", "test CPU", *extra,
                      timeout=600)


def test_ship_model_float16_manifest_readme_and_continuation(tmp_path):
    net, trained = _setup(tmp_path)
    res = _ship(tmp_path, trained)
    assert res.returncode == 0, res.stderr[-2000:]
    shipped = tmp_path / "pretrained" / "KULNet_x4.pth"
    fmt, params, meta = read_checkpoint(str(shipped))
    assert fmt == "kulnet" and meta["stored_dtype"] == "float16" and meta["iteration"] == 120
    assert "options" not in meta and meta["epoch"] == 3 and meta["runs"] == 1  # no run name is shipped
    assert all(v.dtype == torch.float16 for v in params.values() if v.is_floating_point())
    assert shipped.stat().st_size < 0.6 * trained.stat().st_size
    # loading casts back to float32: the float16-rounded weights of the trained network
    fresh = tiny_model(scale=4, seed=9)
    load_network(fresh, str(shipped), expected_scale=4)
    for (name, p), q in zip(fresh.state_dict().items(), net.state_dict().values()):
        assert p.dtype == torch.float32 and torch.equal(p, q.half().float()), name

    manifest = json.loads((tmp_path / "pretrained" / "manifest.json").read_text())
    entry = manifest["files"]["KULNet_x4.pth"]
    assert entry["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert entry["iterations"] == 120 and entry["train_seconds"] == 60 and entry["scale"] == 4
    assert entry["runs"][0]["trained_sha256"] == hashlib.sha256(trained.read_bytes()).hexdigest()
    check = entry["float16_check"]
    assert abs(check["delta_db"]) < 0.01
    assert abs(check["psnr_y_float16"] - check["psnr_y_float32"] - check["delta_db"]) < 1e-9
    cells = {(r["dataset"], r["noise"]) for r in entry["results"]}
    assert cells == {("Set5", 0), ("Set5", 10), ("Set14", 0), ("Set14", 10)}  # x4: noise 0 and 10
    row = next(r for r in entry["results"] if (r["dataset"], r["noise"]) == ("Set5", 0))
    assert row["kulnet"]["psnr_y"] == check["psnr_y_float16"]
    assert {"bicubic", "non_blind"} <= set(row) and row["kulnet"]["kernel_psnr"] > 0
    assert row["kulnet"]["const_kernel_psnr"] > 0 and -1 <= row["kulnet"]["kernel_response"] <= 1

    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# x\n") and readme.endswith("\n\nafter\n") and "nothing yet" not in readme
    assert "| `KULNet_x4.pth` | x4 |" in readme and "120 iterations on" in readme and "1.0 min on test CPU" in readme
    manifest_md = (tmp_path / "pretrained" / "MANIFEST.md").read_text()
    assert entry["sha256"] in manifest_md and "480k iterations" in manifest_md
    assert (tmp_path / "README.md").stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path / "pretrained")) == ["KULNet_x4.pth", "MANIFEST.md", "manifest.json"]

    # a second run that started from the shipped file adds up
    res = _ship(tmp_path, trained, "--continues")
    assert res.returncode == 0, res.stderr[-2000:]
    entry = json.loads((tmp_path / "pretrained" / "manifest.json").read_text())["files"]["KULNet_x4.pth"]
    assert len(entry["runs"]) == 2 and entry["iterations"] == 240 and entry["train_seconds"] == 120
    assert read_checkpoint(str(shipped))[2]["iteration"] == 240

    # two more runs shipped at once: the first (--via) continued from the shipped file, the last
    # (TRAINED) from the first's float32 weights; each is a run with its own hardware and options
    via = tmp_path / "exp" / "call1_G.pth"
    save_network(tiny_model(scale=4, seed=4), str(via), {"iteration": 50})
    res = _ship(tmp_path, trained, "--continues", "--start", shipped, "--via", via, "30", "GPU B", "opts B")
    assert res.returncode == 0, res.stderr[-2000:]
    entry = json.loads((tmp_path / "pretrained" / "manifest.json").read_text())["files"]["KULNet_x4.pth"]
    assert [r["iterations"] for r in entry["runs"]] == [120, 120, 50, 120]
    assert [r["hardware"] for r in entry["runs"]] == ["test CPU", "test CPU", "GPU B", "test CPU"]
    assert entry["runs"][2]["trained_sha256"] == hashlib.sha256(via.read_bytes()).hexdigest()
    assert entry["runs"][2]["train_options"] == "opts B"
    assert entry["iterations"] == 410 and entry["train_seconds"] == 210
    assert read_checkpoint(str(shipped))[2]["iteration"] == 410
    manifest_md = (tmp_path / "pretrained" / "MANIFEST.md").read_text()
    assert "| `KULNet_x4.pth` | 4 | 410 | 3.5 min |" in manifest_md
    assert f"| 3 | {entry['runs'][2]['date']} | 50 | 0.5 min | GPU B | opts B |" in manifest_md
    assert "410 iterations on" in (tmp_path / "README.md").read_text()


def test_ship_model_refuses_and_leaves_the_shipped_file(tmp_path):
    _, trained = _setup(tmp_path)
    shipped = tmp_path / "pretrained" / "KULNet_x4.pth"
    shipped.parent.mkdir()
    shipped.write_bytes(b"previous")
    res = _ship(tmp_path, trained, "--max_delta_db", "0", "--noise", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "float16 weights change the Set5 PSNR_Y" in line and "nothing shipped" in line
    assert shipped.read_bytes() == b"previous" and os.listdir(shipped.parent) == ["KULNet_x4.pth"]

    res = _ship(tmp_path, trained, "--continues")
    assert res.returncode == 2 and "no entry for KULNet_x4.pth" in res.stderr
    wrong_scale = tmp_path / "x2_G.pth"
    save_network(tiny_model(scale=2), str(wrong_scale), {"iteration": 5})
    for via, message in (((wrong_scale, "30"), "not a x4 checkpoint written by train.py"),
                         ((trained, "half a minute"), "the seconds must be a number"),
                         ((tmp_path / "absent.pth", "30"), "absent.pth: no such file")):
        res = _ship(tmp_path, trained, "--noise", "0", "--via", *via, "GPU", "opts")
        assert res.returncode == 2 and "Traceback" not in res.stderr and message in res.stderr, res.stderr
    assert shipped.read_bytes() == b"previous"
    raw = tmp_path / "authors_latest_G.pth"
    torch.save(tiny_model().state_dict(), raw)
    res = _ship(tmp_path, raw)
    assert res.returncode == 2 and "not a checkpoint written by train.py" in res.stderr


def test_continuation_rules_and_one_line_errors(tmp_path):
    from evaluation.results import sha256_file
    from evaluation.shipped import load_manifest
    from scripts.ship_model import check_readme, continuation
    from utils.atomic_save import atomic_write_text
    from utils.errors import KULNetError

    shipped, full, other = (tmp_path / n for n in ("KULNet_x4.pth", "f32.pth", "other.pth"))
    for path, content in ((shipped, b"half"), (full, b"full"), (other, b"x")):
        path.write_bytes(content)
    entry = {"sha256": sha256_file(str(shipped)), "runs": [{"trained_sha256": sha256_file(str(full))}]}
    assert continuation(None, None, "KULNet_x4.pth") == "fresh"
    assert continuation(str(tmp_path / "absent.pth"), entry, "KULNet_x4.pth") == "fresh"
    assert continuation(str(shipped), entry, "KULNet_x4.pth") == "continue"
    assert continuation(str(full), entry, "KULNet_x4.pth") == "continue"
    with pytest.raises(KULNetError, match="neither the shipped KULNet_x4.pth"):
        continuation(str(other), entry, "KULNet_x4.pth")
    with pytest.raises(KULNetError, match="no entry for KULNet_x4.pth"):
        continuation(str(full), None, "KULNet_x4.pth")

    bad = tmp_path / "manifest.json"
    bad.write_text("{broken")
    with pytest.raises(KULNetError, match="cannot read the manifest"):
        load_manifest(str(bad))
    bad.write_text("[]")
    with pytest.raises(KULNetError, match="not a manifest"):
        load_manifest(str(bad))
    assert load_manifest(str(tmp_path / "none.json")) == {"files": {}}
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(KULNetError, match="shipped-results:start"):
        check_readme(str(readme))
    readme.chmod(0o600)
    atomic_write_text(str(readme), README)
    assert readme.read_text() == README and readme.stat().st_mode & 0o777 == 0o600  # mode kept
    check_readme(str(readme))
