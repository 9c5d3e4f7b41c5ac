"""Prepared LMDB datasets (the authors' layout): reading, equality with the image folder, errors, options."""
import os
import pickle
from collections import OrderedDict

import pytest
import torch
from _lmdb_helpers import authors_lmdb, write_kinds

from data import HRDataset, LMDBHRDataset, create_dataset
from options.options import parse
from utils.errors import KULNetError
from utils.lmdb_layout import detect_data_type, read_meta_info


@pytest.fixture
def pair(tmp_path):
    folder = write_kinds(tmp_path / "hr")
    return folder, authors_lmdb(folder, tmp_path / "hr.lmdb")


def test_an_authors_style_lmdb_gives_the_folders_crops_and_images(pair):
    folder, prepared = pair
    for phase, gt in (("train", 32), ("test", None)):
        img_ds, lmdb_ds = HRDataset(folder, 4, phase, gt), LMDBHRDataset(prepared, 4, phase, gt)
        assert len(img_ds) == len(lmdb_ds) == 3
        for i in range(3):
            for seed in range(4 if phase == "train" else 1):
                torch.manual_seed(seed)
                a = img_ds[i]["hr"]
                torch.manual_seed(seed)
                b = lmdb_ds[i]["hr"]
                assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b), (phase, i, seed)
    assert lmdb_ds[0]["path"] == os.path.join(prepared, "a_rgb")


def test_uint8_crops_hold_the_same_levels(pair):
    folder, prepared = pair
    ds, ds8 = LMDBHRDataset(prepared, 4, "train", 32), LMDBHRDataset(prepared, 4, "train", 32, uint8_crops=True)
    for i in range(3):
        torch.manual_seed(i)
        ref = ds[i]["hr"]
        torch.manual_seed(i)
        crop = ds8[i]["hr"]
        assert crop.dtype == torch.uint8 and crop.shape == (3, 32, 32)
        assert torch.equal(crop.float() / 255, ref)


def test_data_type_detection_and_create_dataset(pair, tmp_path):
    folder, prepared = pair
    assert detect_data_type(folder) == "img" and detect_data_type(prepared) == "lmdb"
    opt = {"mode": "HR", "phase": "train", "scale": 4, "GT_size": 32}
    assert isinstance(create_dataset({**opt, "dataroot_GT": prepared}), LMDBHRDataset)
    assert type(create_dataset({**opt, "dataroot_GT": folder, "data_type": "img"})) is HRDataset
    with pytest.raises(KULNetError, match="data.mdb and meta_info.pkl missing"):
        create_dataset({**opt, "dataroot_GT": folder, "data_type": "lmdb"})
    with pytest.raises(KULNetError, match="holds a prepared dataset.*set data_type to lmdb"):
        create_dataset({**opt, "dataroot_GT": prepared, "data_type": "img"})
    named = tmp_path / "DF2K_HR.lmdb"  # the authors' naming says lmdb, the files are not there
    named.mkdir()
    with pytest.raises(KULNetError, match="DF2K_HR.lmdb: data.mdb and meta_info.pkl missing"):
        create_dataset({**opt, "dataroot_GT": str(named)})


def test_data_type_option(pair, tmp_path):
    folder, prepared = pair

    def options(root, extra=""):
        path = tmp_path / "o.yml"
        path.write_text(f"name: t\nscale: 4\ndatasets:\n  train:\n    dataroot_GT: {root}\n{extra}"
                        f"  val:\n    dataroot_GT: {root}\n")
        return str(path)

    for root, extra, expected in ((prepared, "", None), (prepared, "    data_type: lmdb\n", "lmdb"),
                                  (folder, "    data_type: img\n", "img")):
        assert parse(options(root, extra))["datasets"]["train"]["data_type"] == expected
    with pytest.raises(KULNetError, match=r"data_type = 'png'.*one of \['img', 'lmdb'\]"):
        parse(options(folder, "    data_type: png\n"))
    with pytest.raises(KULNetError, match=r"o.yml: datasets.train.dataroot_GT: .*hr: data.mdb and meta_info.pkl "
                                          r"missing"):
        parse(options(folder, "    data_type: lmdb\n"))


def test_meta_info_problems_are_one_line_errors_naming_the_file(pair):
    _, prepared = pair
    meta_path = os.path.join(prepared, "meta_info.pkl")
    good = open(meta_path, "rb").read()
    meta = pickle.loads(good)

    cases = {
        b"not a pickle": "corrupt",
        pickle.dumps(["keys"]): "not a meta_info dict",
        pickle.dumps({**meta, "resolution": meta["resolution"][:2]}): "one entry per image",
        pickle.dumps({**meta, "resolution": ["3x64x80"] * 3}): "resolution '3x64x80' is not 'C_H_W'",
        pickle.dumps({**meta, "dtype": ["float32"] * 3}): "dtype 'float32' of key 'a_rgb'",
        pickle.dumps({**meta, "name": OrderedDict()}): "corrupt",  # names a class: refused, not imported
    }
    for data, message in cases.items():
        with open(meta_path, "wb") as handle:
            handle.write(data)
        with pytest.raises(KULNetError, match=message) as err:
            LMDBHRDataset(prepared, 4, "train", 32)
        assert str(err.value).startswith(meta_path) and "\n" not in str(err.value)
    os.remove(meta_path)
    with pytest.raises(KULNetError, match="meta_info.pkl: missing"):
        read_meta_info(prepared)


def test_a_missing_key_or_a_wrong_length_is_named_when_the_dataset_is_built(pair):
    _, prepared = pair
    meta_path = os.path.join(prepared, "meta_info.pkl")
    meta = pickle.load(open(meta_path, "rb"))
    with open(meta_path, "wb") as handle:
        pickle.dump({**meta, "keys": meta["keys"][:2] + ["zz"]}, handle)
    with pytest.raises(KULNetError, match=r"data.mdb: key 'zz' listed in meta_info.pkl is missing"):
        LMDBHRDataset(prepared, 4, "test")
    with open(meta_path, "wb") as handle:
        pickle.dump({**meta, "resolution": ["3_64_81"] + meta["resolution"][1:]}, handle)
    with pytest.raises(KULNetError, match=r"key 'a_rgb' holds 15360 bytes, not the 15552 of its resolution 3_64_81"):
        LMDBHRDataset(prepared, 4, "test")


def test_an_image_smaller_than_the_crop_is_reported_as_training_reports_it(pair):
    _, prepared = pair
    with pytest.raises(KULNetError, match=r"hr.lmdb/a_rgb: image is 64x80, smaller than the training crop "
                                          r"GT_size=72; remove it or lower GT_size"):
        LMDBHRDataset(prepared, 4, "train", 72)
