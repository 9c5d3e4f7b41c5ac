"""save_network / load_network: our format, the authors' raw layout, and one-line errors."""
import os
from collections import OrderedDict

import pytest
import torch

from models.modules.kulnet import KULNet
from models.networks import PACKAGE_VERSION, code_version, define_G, load_network, save_network
from utils.errors import KULNetError


def _tiny(scale=4, seed=0):
    torch.manual_seed(seed)
    return KULNet(scale=scale, est_nf=8, sr_nf=8).eval()


def _lr():
    return torch.rand(1, 3, 16, 17, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def full_net():
    """(full-width x4 net, its eval output on a fixed LR), computed once."""
    torch.manual_seed(0)
    net = KULNet(scale=4).eval()
    return net, _sr(net, _lr())


def _sr(net, lr):
    with torch.no_grad():
        return net(lr).sr


@pytest.mark.parametrize("layout", ["raw", "module", "params", "state_dict"])
def test_authors_layout_loads_and_gives_identical_output(full_net, tmp_path, layout):
    net, reference = full_net
    sd = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    if layout == "module":
        sd = OrderedDict(("module." + k, v) for k, v in sd.items())
    obj = {layout: sd} if layout in ("params", "state_dict") else sd
    path = str(tmp_path / "latest_G.pth")
    torch.save(obj, path)
    torch.manual_seed(5)
    fresh = KULNet(scale=4).eval()
    assert not torch.equal(fresh.SR_net.conv.weight, net.SR_net.conv.weight)
    meta = load_network(fresh, path)
    assert meta["format"] == "authors" and meta["scale"] is None
    assert meta["missing_keys"] == [] and meta["unexpected_keys"] == []
    assert torch.equal(_sr(fresh, _lr()), reference)


def test_our_format_round_trip_keeps_metadata(tmp_path):
    net = _tiny(scale=3)
    path = str(tmp_path / "sub" / "10_G.pth")
    save_network(torch.nn.DataParallel(net), path, {"iteration": 10, "note": "x"})
    assert sorted(os.listdir(tmp_path / "sub")) == ["10_G.pth"]  # no temporary file left behind
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == "kulnet" and not any(k.startswith("module.") for k in raw["params"])
    fresh = _tiny(scale=3, seed=1)
    meta = load_network(fresh, path, expected_scale=3)
    assert meta["scale"] == 3 and meta["kernel_size"] == 21 and meta["model"] == "KULNet"
    assert meta["iteration"] == 10 and meta["note"] == "x" and meta["format"] == "kulnet"
    assert meta["code_version"] == code_version() and isinstance(code_version(), str)
    lr = _lr()
    assert torch.equal(_sr(fresh, lr), _sr(net, lr))


def test_code_version_is_commit_or_package_version():
    version = code_version()
    assert version == PACKAGE_VERSION or (4 <= len(version) <= 40 and all(c in "0123456789abcdef" for c in version))


def _assert_one_line(err, *texts):
    message = str(err.value)
    assert "\n" not in message
    for text in texts:
        assert text in message, message


def test_wrong_scale_our_format(tmp_path):
    path = str(tmp_path / "net.pth")
    save_network(_tiny(scale=2), path, {"iteration": 1})
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(scale=4), path)
    _assert_one_line(err, path, "x2", "x4")
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(scale=2), path, expected_scale=3)
    _assert_one_line(err, "x2", "x3 was expected")


def test_wrong_scale_authors_layout_from_expected_scale_or_name(tmp_path):
    sd = _tiny(scale=2).state_dict()
    plain = str(tmp_path / "latest_G.pth")
    named = str(tmp_path / "KULNet_x2.pth")
    torch.save(sd, plain)
    torch.save(sd, named)
    assert load_network(_tiny(scale=4), plain)["scale"] is None  # unknowable from the tensors
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(scale=4), plain, expected_scale=2)
    _assert_one_line(err, "x2", "the network is x4")
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(scale=4), named)
    _assert_one_line(err, "file name", "x2")
    assert load_network(_tiny(scale=2), named)["scale"] == 2
    # the scripts always pass expected_scale: the name is still checked (x2 file, x4 run)
    for path in (named, str(tmp_path / "KULNet_x2" / "models" / "latest_G.pth")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(sd, path)
        with pytest.raises(KULNetError) as err:
            load_network(_tiny(scale=4), path, expected_scale=4)
        _assert_one_line(err, "x2 (its file name)", "x4 was expected")
    assert load_network(_tiny(scale=2), named, expected_scale=2)["scale"] == 2


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(), path)
    _assert_one_line(err, path, "not found")


def test_truncated_and_garbage_files(tmp_path):
    path = str(tmp_path / "ok.pth")
    save_network(_tiny(), path)
    data = open(path, "rb").read()
    truncated = str(tmp_path / "cut.pth")
    with open(truncated, "wb") as handle:
        handle.write(data[: len(data) // 2])
    garbage = str(tmp_path / "text.pth")
    with open(garbage, "w") as handle:
        handle.write("not a checkpoint\n")
    for bad in (truncated, garbage):
        with pytest.raises(KULNetError) as err:
            load_network(_tiny(), bad)
        _assert_one_line(err, bad, "cannot read the checkpoint", "truncated")


def test_foreign_checkpoints(tmp_path):
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 3, 3))
    path = str(tmp_path / "other.pth")
    torch.save(other.state_dict(), path)
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(), path)
    _assert_one_line(err, path, "not a checkpoint of this KULNet", "missing")
    # same names, other widths
    wide = str(tmp_path / "wide.pth")
    torch.save(_tiny().state_dict(), wide)
    torch.manual_seed(0)
    with pytest.raises(KULNetError) as err:
        load_network(KULNet(scale=4, est_nf=16, sr_nf=8), wide)
    _assert_one_line(err, "has shape", "in the network")
    # a training state instead of weights
    state = str(tmp_path / "10.state")
    torch.save({"iter": 10, "optimizers": [{"lr": 1e-4}]}, state)
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(), state)
    _assert_one_line(err, "holds no network weights")


def test_partial_checkpoint_strict_and_non_strict(tmp_path):
    net = _tiny()
    sd = net.state_dict()
    del sd["SR_net.delta_3"]
    sd["extra.weight"] = torch.zeros(1)
    path = str(tmp_path / "partial.pth")
    torch.save(sd, path)
    with pytest.raises(KULNetError) as err:
        load_network(_tiny(seed=2), path)
    _assert_one_line(err, "1 missing keys", "1 unexpected")
    fresh = _tiny(seed=2)
    meta = load_network(fresh, path, strict=False)
    assert meta["missing_keys"] == ["SR_net.delta_3"] and meta["unexpected_keys"] == ["extra.weight"]
    assert torch.equal(fresh.SR_net.delta_0, net.SR_net.delta_0)


def test_our_checkpoint_records_its_widths_and_test_scripts_use_them(tmp_path, monkeypatch):
    from evaluation.inference import load_model
    from models.networks import network_options_for_checkpoint

    tiny = {"scale": 4, "kernel_size": 21, "network_G": {"est_nf": 8, "sr_nf": 8, "n_stages": 2}}
    net = define_G(tiny)
    path = str(tmp_path / "tiny_x4.pth")
    save_network(net, path, {"iteration": 1})
    defaults = {"which_model_G": "KULNet", "in_nc": 3, "est_nf": 64, "sr_nf": 32, "n_stages": 4,
                "sample_at_eval": False}  # what the validated test options hold when nothing is set
    opt = {"scale": 4, "kernel_size": 21, "network_G": dict(defaults), "checkpoint": path, "literal": True}
    assert network_options_for_checkpoint(opt, path)["sr_nf"] == 8
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    model, meta = load_model(opt, torch.device("cpu"))
    monkeypatch.undo()
    assert reads == [path]  # the file is read once for the widths and the weights
    assert meta["network_G"]["n_stages"] == 2
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(lr).sr, net.eval()(lr).sr)
    with pytest.raises(KULNetError, match=r"trained with network_G.sr_nf = 8, the options say 16"):
        network_options_for_checkpoint({**opt, "network_G": {**defaults, "sr_nf": 16}}, path)


def test_git_commit_of_the_checkout_and_outside_git(tmp_path, monkeypatch):
    import subprocess

    from utils import git_info

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=git_info.CHECKOUT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = None
    if head:
        assert git_info.git_commit() == head
        assert head.startswith(git_info.git_commit(short=True))
        assert git_info.git_commit(mark_dirty=True) in (head, head + "+dirty")
    monkeypatch.setattr(git_info, "CHECKOUT", str(tmp_path))  # not a repository
    monkeypatch.delenv("KULNET_CODE_VERSION", raising=False)
    assert git_info.git_commit() is None and code_version.__wrapped__() == PACKAGE_VERSION  # uncached
    monkeypatch.setenv("KULNET_CODE_VERSION", "14b2d70")  # the device's stale .git: the caller says
    assert git_info.git_commit(mark_dirty=True) == code_version.__wrapped__() == "14b2d70"


def test_a_full_disk_during_a_save_is_an_oserror_and_leaves_the_old_file(tmp_path, repo_root):
    """A file-size limit stands in for a full disk: the save must fail with an OSError (which
    KULNetModel.save turns into one line with the resume point), not torch's "unexpected pos"
    RuntimeError, and leave the previous file and no temporary file behind."""
    import subprocess
    import sys

    script = f"""
import os, resource, signal, sys, torch
sys.path.insert(0, 'codes')
from utils.atomic_save import atomic_torch_save
path = {str(tmp_path / 'state.pth')!r}
atomic_torch_save({{'old': torch.zeros(10)}}, path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
try:
    atomic_torch_save({{'new': torch.zeros(1_000_000)}}, path)
except OSError as err:
    print('OSError', err.errno)
print(sorted(os.listdir(os.path.dirname(path))), torch.load(path)['old'].shape)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["OSError 27", "['state.pth'] torch.Size([10])"]  # EFBIG
