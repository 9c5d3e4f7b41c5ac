"""One-line user errors: run_cli prints 'error: <line>' and exits 2, also for errors re-raised
from a data-loader worker with the worker's traceback folded into the message."""
import pytest
from torch.utils.data import DataLoader, Dataset

from utils.errors import KULNetError, one_line, run_cli


class _BadImage(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise KULNetError("photos/b.png: corrupt or truncated image; re-export or remove it")


def test_run_cli_prints_one_line_and_exits_2(capsys):
    def main():
        raise KULNetError("options/x.yml: unknown key 'train.lr_g'; did you mean 'train.lr_G'?")

    with pytest.raises(SystemExit) as stop:
        run_cli(main)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: options/x.yml: unknown key 'train.lr_g'; did you mean 'train.lr_G'?\n"


def test_error_from_a_data_loader_worker_is_one_line(capsys):
    def main():
        for _ in DataLoader(_BadImage(), num_workers=1):
            pass

    with pytest.raises(SystemExit) as stop:
        run_cli(main)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: photos/b.png: corrupt or truncated image; re-export or remove it\n"


def test_other_exceptions_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        run_cli(lambda: 1 / 0)
    assert one_line(RuntimeError("Caught KULNetError in DataLoader worker process 0.\nOriginal Traceback:\n"
                                 "  File x\nutils.errors.KULNetError: a.png: bad\n")) == "a.png: bad"
