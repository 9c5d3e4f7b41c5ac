"""Prepare a folder of HR images once for fast training: an LMDB of raw images (the authors' layout).

Usage (from the repository root)::

    python codes/scripts/prepare_dataset.py --hr datasets/DF2K/HR --out datasets/DF2K/HR.lmdb
        [--workers N] [--on_error stop|skip] [--gt_size 192] [--overwrite]

Then set ``dataroot_GT: datasets/DF2K/HR.lmdb`` in the training options (recognised by its
``data.mdb`` and ``meta_info.pkl``; ``data_type: lmdb`` says it explicitly). Training reads the same
crops from it as from the image folder, without decoding a whole PNG per crop.

Output: ``OUT/data.mdb`` with one value per image (key: the file stem; value: the (H, W, 3) BGR
array, uint8, or little-endian uint16 for 16-bit files) and ``OUT/meta_info.pkl`` (keys, "C_H_W"
resolutions, dtypes; see :mod:`utils.lmdb_layout`). Every file goes through the training reader's
conversion (grayscale expanded, alpha dropped, palette expanded, EXIF orientation applied).

Safety: the expected size is printed first, and the run refuses to start when the disk lacks the
room. Work goes to ``OUT.partial`` and is renamed to ``OUT`` only when complete, so an interrupted
run never leaves a folder that looks finished; running the same command again continues with the
images not yet written (those whose file changed are written again), and says so. An unreadable
file stops the run (``--on_error stop``, the default: fix or remove it, then run again to continue)
or is left out and listed at the end (``--on_error skip``). A second run on the same ``--out`` is refused
while the first holds ``OUT.lock``; a damaged partial output (a data.mdb cut short) is reported in a
line that says to delete it.
"""
import argparse
import multiprocessing
import os
import re
import shutil
import sys
import threading
import time

import numpy as np
from tqdm import tqdm

if __package__ in (None, ""):  # run as a script: put codes/ on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.hr_dataset import crop_too_small  # noqa: E402
from data.lmdb_writer import PartialOutput  # noqa: E402
from utils.errors import KULNetError, one_line, run_cli  # noqa: E402
from utils.image_io import image_size, list_images, read_image_raw  # noqa: E402
from utils.lmdb_layout import DATA_FILE, is_prepared  # noqa: E402
from utils.output_dir import prepare_output_dir  # noqa: E402
from utils.output_lock import claim_output  # noqa: E402

PAGE = 4096  # LMDB page size: a large value takes whole overflow pages


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hr", required=True, help="folder of HR images (e.g. datasets/DF2K/HR)")
    p.add_argument("--out", required=True, help="prepared folder to write (e.g. datasets/DF2K/HR.lmdb)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes decoding images in parallel (default: the CPU count)")
    p.add_argument("--on_error", choices=("stop", "skip"), default="stop",
                   help="an unreadable file (or one smaller than --gt_size): stop the run (default), or "
                        "leave the file out and list it at the end")
    p.add_argument("--gt_size", type=int, default=None,
                   help="training crop size: images smaller than it are reported as training would")
    p.add_argument("--overwrite", action="store_true", help="replace a finished OUT")
    return p.parse_args(argv)


def _fingerprint(path):
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns]


def _keys(paths):
    """File stems, checked to be distinct (they become the LMDB keys)."""
    keys, seen = [], {}
    for path in paths:
        key = os.path.splitext(os.path.basename(path))[0]
        if key in seen:
            raise KULNetError(f"{path}: same name as {seen[key]} without the extension, and names are the "
                              f"keys of the prepared data; rename one of them")
        seen[key] = path
        keys.append(key)
    return keys


def _bytes_per_sample(path):
    """2 for a 16-bit image, from its header (PNG bit depth, TIFF BitsPerSample, PNM maxval), else 1;
    2 when a TIFF or PNM header cannot be read, so that the disk check errs on the safe side."""
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if ext == ".png":
        return 2 if len(head) >= 26 and head[12:16] == b"IHDR" and head[24] == 16 else 1
    if ext in (".tif", ".tiff"):
        try:
            from PIL import Image

            with Image.open(path) as im:
                return 2 if max(im.tag_v2.get(258, (16,))) > 8 else 1
        except Exception:  # noqa: BLE001 - unreadable header: the safe side
            return 2
    if ext in (".ppm", ".pgm"):
        fields = re.sub(rb"#[^\n]*", b" ", head).split()[:4]  # magic, width, height, maxval
        return 1 if len(fields) == 4 and fields[3].isdigit() and int(fields[3]) < 256 else 2
    return 1  # JPEG, BMP, WebP: 8 bits as OpenCV reads them


def _value_bytes(h, w, itemsize):
    """Bytes an (h, w, 3) image takes in data.mdb: whole pages, with the page header."""
    return -(-(16 + h * w * 3 * itemsize) // PAGE) * PAGE


def expected_size(paths, sizes):
    """Expected size of data.mdb: the images' pages plus the B-tree and meta pages (a margin).

    Args:
        paths (list[str]): the images. sizes (list[(H, W) | None]): their header sizes (None: unknown).
    """
    total = sum(_value_bytes(*hw, _bytes_per_sample(p)) for p, hw in zip(paths, sizes) if hw)
    return total + PAGE * (16 + len(paths) // 20) + total // 200


def _human(n):
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def check_disk(folder, needed):
    """Refuse to start when ``folder``'s disk has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise KULNetError(f"{folder}: {_human(free)} free on this disk, the prepared data needs about "
                          f"{_human(needed)}; free some space or choose --out on another disk")


def decode(path):
    """Read one image as the training reader does; returns (shape, dtype name, BGR bytes) or an error line.

    Runs in the worker processes; errors come back as text (one line naming the file), not exceptions.
    """
    try:
        img, _ = read_image_raw(path)
    except KULNetError as err:
        return None, None, one_line(err)
    except Exception as err:  # noqa: BLE001 - whatever the decoder raises, name the file
        return None, None, f"{path}: cannot be read ({type(err).__name__}: {err})"
    bgr = np.ascontiguousarray(img[:, :, ::-1], dtype=img.dtype.newbyteorder("<"))
    return bgr.shape, img.dtype.name, bgr.tobytes()


def decoded(paths, workers):
    """Yield ``decode(path)`` for each path, in order, with ``workers`` processes.

    At most two images per worker wait decoded ahead of the writer (they are large). Close the
    generator when stopping early: that ends the processes.
    """
    if workers <= 1 or len(paths) <= 1:
        yield from map(decode, paths)
        return
    ahead, stop = threading.Semaphore(2 * workers), threading.Event()

    def submitted():  # the pool's task thread runs this: it waits while the writer is behind
        for path in paths:
            while not ahead.acquire(timeout=0.1):
                if stop.is_set():  # else terminating the pool would wait for this thread forever
                    return
            yield path

    with multiprocessing.get_context("spawn").Pool(min(workers, len(paths))) as pool:
        try:
            for result in pool.imap(decode, submitted()):
                ahead.release()
                yield result
        finally:
            stop.set()


def _check_out(hr, out, overwrite):
    if os.path.abspath(hr) == out or out.startswith(os.path.abspath(hr) + os.sep):
        raise KULNetError(f"{out}: inside the image folder {hr}; choose --out elsewhere")
    if os.path.exists(out):
        if not is_prepared(out):
            raise KULNetError(f"{out}: exists and is not a prepared dataset; choose another --out")
        if not overwrite:
            raise KULNetError(f"{out}: already prepared; use it, or pass --overwrite to make it again")


def prepare(args, log=print):
    """Run the preparation (see the module docstring); returns a summary dict."""
    t0 = time.monotonic()
    paths = list_images(args.hr)
    keys = _keys(paths)
    out = os.path.abspath(args.out.rstrip("/\\"))
    if args.workers < 1:
        raise KULNetError(f"--workers {args.workers}: give 1 or more")
    _check_out(args.hr, out, args.overwrite)
    prepare_output_dir(os.path.dirname(out), f"--out {args.out}: its folder")
    with claim_output(out, "--out"):
        _check_out(args.hr, out, args.overwrite)  # again: another run may have finished it meanwhile
        return _prepare_claimed(args, t0, paths, keys, out, log)


def _prepare_claimed(args, t0, paths, keys, out, log):
    """:func:`prepare` once ``out`` is this run's (see :func:`utils.output_lock.claim_output`)."""
    sizes = [image_size(p) for p in paths]
    expected = expected_size(paths, sizes)
    image_bytes = sum(os.path.getsize(p) for p in paths)
    log(f"{len(paths)} images in {args.hr} ({_human(image_bytes)}); expected size of the prepared data: "
        f"{_human(expected)}")
    partial = out + ".partial"
    resumed = os.path.isdir(partial)
    written = os.path.join(partial, DATA_FILE)
    check_disk(os.path.dirname(out), expected - (os.path.getsize(written) if os.path.isfile(written) else 0))
    fingerprints = {k: _fingerprint(p) for k, p in zip(keys, paths)}
    store = PartialOutput(partial, map_size=2 * expected + 2**30)
    try:
        done = store.load(fingerprints) if resumed else 0
        if done:
            log(f"continuing {done} of {len(paths)}: the images already written to {partial} are kept")
        else:
            log(f"starting clean{' (nothing usable in the unfinished one)' if resumed else ''}: writing {partial}")
        skipped = _write_all(args, keys, paths, sizes, fingerprints, store, partial)
        kept = [k for k in keys if k in store.done and k not in skipped]
        if not kept:
            raise KULNetError(f"{args.hr}: no image could be prepared (see the messages above)")
        store.finish(kept, os.path.basename(out))
    finally:
        store.close()
    _publish(partial, out, args.overwrite)
    seconds = time.monotonic() - t0
    lmdb_bytes = os.path.getsize(os.path.join(out, DATA_FILE))
    log(f"prepared {len(kept)} images into {out}: {_human(lmdb_bytes)}, {lmdb_bytes / image_bytes:.2f}x the "
        f"image files, in {seconds:.1f} s")
    if args.on_error == "skip":
        log(f"rule --on_error skip: {len(skipped)} file(s) left out" +
            "".join(f"\n  {m}" for m in skipped.values()))
    else:
        log("rule --on_error stop: no file failed")
    return {"images": len(kept), "skipped": list(skipped.values()), "seconds": seconds,
            "lmdb_bytes": lmdb_bytes, "image_bytes": image_bytes, "expected_bytes": expected,
            "continued": done}


def _write_all(args, keys, paths, sizes, fingerprints, store, partial):
    """Decode and store every image not yet in ``store``; returns {key: message} of the skipped."""
    skipped, todo = {}, []
    for key, path, hw in zip(keys, paths, sizes):
        small = crop_too_small(path, *hw, args.gt_size) if args.gt_size and hw else None
        if small:  # from the header: before any decoding, as training reports it
            skipped[key] = _fail(small, args.on_error, partial)
        elif key not in store.done:
            todo.append((key, path))
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), unit="img", desc="preparing",
               dynamic_ncols=True, file=sys.stderr)
    results = decoded([p for _, p in todo], args.workers)
    try:
        for (key, path), (shape, dtype, value) in zip(todo, results):
            small = crop_too_small(path, shape[0], shape[1], args.gt_size) if shape and args.gt_size else None
            if shape is None or small:
                skipped[key] = _fail(small or value, args.on_error, partial, bar)
            else:
                store.add(key, fingerprints[key], shape, dtype, value)
            bar.update(1)
    finally:
        results.close()
        bar.close()
        store.commit()  # what was decoded well is kept, also when stopping
    return skipped


def _fail(message, rule, partial, bar=None):
    """Apply the --on_error rule to one failed file: stop, or report it and go on."""
    if rule == "stop":
        raise KULNetError(f"{message} [stopped by --on_error stop: fix or remove the file and run the same "
                          f"command again to continue from {partial}, or pass --on_error skip]")
    (bar.write if bar is not None else tqdm.write)(f"skipped: {message}", file=sys.stderr)
    return message


def _publish(partial, out, overwrite):
    """Rename the finished ``partial`` to ``out`` (replacing a previous one only now, and only when asked)."""
    if os.path.exists(out) and not overwrite:
        raise KULNetError(f"{out}: made by another run meanwhile; this run's work is kept in {partial} "
                          f"(delete it, or use it with --overwrite)")
    if os.path.exists(out):
        old = f"{out}.replaced"
        if os.path.exists(old):
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old)
    else:
        os.replace(partial, out)


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to continue from {args.out.rstrip('/')}.partial",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
