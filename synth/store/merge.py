"""Joining the finished parts of a store into ``STORE.h5``, as a view or as one self-contained file.

Merging (:func:`merge_parts`), once every part exists, writes ``STORE.h5.tmp`` and renames it to ``STORE.h5``:

- **view** (default): the image datasets of ``STORE.h5`` are HDF5 *virtual datasets* over the parts, which
  stay in ``STORE.h5.parts/`` beside it (referenced by relative path, so the pair may be moved together);
  the small per-sample datasets are copied. Nothing is copied twice: at 1.6 MB per 256 x 256 sample a copying
  merge doubles the disk traffic (~630 MB/s at 200 samples/s, more than this machine's disk sustains).
  :func:`relaxomap.synth.store.format.check_store` refuses a view whose parts are missing (a virtual dataset
  would silently read fill).
- **self-contained** (``self_contained=True``, ``relaxomap synth merge --self-contained``): the chunks are
  copied as they are into one movable file and the parts folder is removed.

Either way the parts' checksums are collected into the store's ``part_checksums`` attribute
(:mod:`relaxomap.synth.store.checksum`); ``verify=True`` (``synth merge --verify``) first reads every part back
and refuses to merge one whose data does not match its checksums or holds non-finite values.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import h5py

from relaxomap.atomic import check_output_file
from relaxomap.synth.generate import SynthConfig
from relaxomap.synth.store.checksum import METHOD, PART_ATTR, STORE_ATTR, part_record, read_json_attr
from relaxomap.synth.store.failure import abandon_file, check_free_bytes, merge_failure
from relaxomap.synth.store.format import IMAGE_FIELDS, SCHEMA_VERSION, is_view, parts_dir, store_fields
from relaxomap.synth.store.parts import (
    MANIFEST,
    Layout,
    create_datasets,
    create_small_datasets,
    flush_and_drop,
    part_ok,
    part_path,
    tmp_name,
    write_attrs,
)

__all__ = ["merge_parts"]


def _finished_run(out: Path, folder: Path) -> tuple[SynthConfig, Layout]:
    """The configuration and layout of the run in ``folder``, once every one of its parts is finished.

    Raises
    ------
    ValueError
        if the manifest is missing, unreadable or of another schema, or parts are missing (listed).
    """
    man_path = folder / MANIFEST
    if not man_path.exists():
        raise ValueError(f"no parts to merge: {man_path} not found (run `relaxomap synth --out {out} ...` first)")
    try:
        manifest = json.loads(man_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{man_path}: unreadable manifest ({err})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{man_path}: schema_version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
    config = SynthConfig.from_dict(manifest["config"])
    config_json = config.to_json()
    layout = Layout(manifest["n_samples"], manifest["slices_per_subject"], manifest["part_subjects"])
    missing = [p for p in range(layout.n_parts) if not part_ok(part_path(folder, p), layout, p, config_json)]
    if missing:
        shown = ", ".join(str(p) for p in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(f"cannot merge {out}: {len(missing)} of {layout.n_parts} parts missing or incomplete "
                         f"in {folder} (parts {shown}); run the missing shards first")
    return config, layout


def _virtual_images(dst: h5py.File, folder: Path, layout: Layout, h: int, w: int) -> None:
    """The image datasets of a view: virtual datasets over the parts, referenced relative to the store's folder."""
    fields = store_fields(h, w)
    n = layout.n_samples
    for name in IMAGE_FIELDS:
        dtype, shape = fields[name]
        lay = h5py.VirtualLayout((n, *shape), dtype=dtype)
        for p in range(layout.n_parts):
            start, stop = layout.part_samples(p)
            rel = f"{folder.name}/{part_path(folder, p).name}"  # relative to OUT's folder
            lay[start:stop] = h5py.VirtualSource(rel, name, shape=(stop - start, *shape), dtype=dtype)
        dst.create_virtual_dataset(name, lay)


def _copy_parts(dst: h5py.File, folder: Path, layout: Layout, h: int, w: int, self_contained: bool) -> list[Any]:
    """Copy every part's small datasets into ``dst``, and with ``self_contained`` its image chunks as they are
    (compressed chunks are not decompressed). Returns the parts' checksum records (None for a part written
    before checksums)."""
    fields = store_fields(h, w)
    records: list[Any] = []
    for p in range(layout.n_parts):
        start, stop = layout.part_samples(p)
        with h5py.File(part_path(folder, p), "r") as src:
            sums = read_json_attr(src.attrs, PART_ATTR)
            records.append(None if sums is None or sums.get("method") != METHOD
                           else part_record(p, start, stop - start, sums.get("datasets", {})))
            for name in fields:
                if name not in IMAGE_FIELDS:
                    dst[name][start:stop] = src[name][...]
                elif self_contained:  # copy compressed chunks without decompressing
                    s_id, d_id = src[name].id, dst[name].id
                    zeros = (0,) * (len(fields[name][1]))
                    for i in range(stop - start):
                        mask, data = s_id.read_direct_chunk((i, *zeros))
                        d_id.write_direct_chunk((start + i, *zeros), data, mask)
    return records


def merge_parts(out: str | os.PathLike, self_contained: bool = False, verify: bool = False) -> Path:
    """Join the complete parts of ``OUT.parts/`` into ``OUT`` (atomically; see the module docstring).

    Parameters
    ----------
    out : the store path.
    self_contained : copy the parts' chunks into ``OUT`` and remove the parts folder, instead of writing a
        view (virtual datasets over the parts, which stay beside ``OUT``). A view store can be made
        self-contained later by calling this again with ``self_contained=True``.
    verify : first read every part back and check it against its checksums and for non-finite values
        (:func:`relaxomap.synth.store.verify.verify_parts`); with an existing ``OUT``, check that store instead.

    Raises
    ------
    ValueError
        if the parts folder is missing, its manifest unreadable, parts are missing (listed), the output
        location cannot be written, or (``verify``) a part is corrupt or holds non-finite values (named).
    relaxomap.synth.store.failure.StoreWriteError
        (an OSError) if writing fails; a DiskFullError says how much space the merged store needs and where.
        Nothing half-written is left and the parts are untouched.
    """
    from relaxomap.synth.store.verify import StoreVerifyError, verify_parts, verify_store

    out = Path(out)
    folder = parts_dir(out)
    if out.exists() and not (self_contained and is_view(out)):
        if verify:
            StoreVerifyError.raise_if(verify_store(out))
        if not is_view(out):
            shutil.rmtree(folder, ignore_errors=True)  # left if a self-contained merge was killed after its rename
        return out
    check_output_file(out, "store", overwrite=True)  # merging onto a view replaces it
    config, layout = _finished_run(out, folder)
    if verify:
        StoreVerifyError.raise_if(verify_parts(folder, layout.n_parts))
    tmp = tmp_name(out)
    need = (sum(part_path(folder, p).stat().st_size for p in range(layout.n_parts)) if self_contained
            else layout.n_samples * 512) + 1e6
    try:
        check_free_bytes(out.parent, need, f"merging {out}")
        dst = h5py.File(tmp, "w", libver=("v110", "latest"))
        try:
            _write_merged(dst, folder, config, layout, self_contained)
            dst.close()
        except BaseException:
            abandon_file(dst, tmp)  # never leave a half-written store
            raise
        flush_and_drop(tmp)
        os.replace(tmp, out)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        explained = merge_failure(err, out, folder, need)
        if explained is None:
            raise
        raise explained from err
    if self_contained:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _write_merged(dst: h5py.File, folder: Path, config: SynthConfig, layout: Layout, self_contained: bool) -> None:
    """The merged store, written into the open file ``dst`` (a view or self-contained, with the parts'
    checksums)."""
    h, w = config.image_size
    n = layout.n_samples
    if self_contained:
        create_datasets(dst, n, h, w)
    else:
        create_small_datasets(dst, n, h, w)
        _virtual_images(dst, folder, layout, h, w)
    records = _copy_parts(dst, folder, layout, h, w, self_contained)
    write_attrs(dst, config.to_json(), n, complete=True)
    dst.attrs["layout"] = "self-contained" if self_contained else "view"
    if all(r is not None for r in records):  # parts written before checksums: none recorded
        dst.attrs[STORE_ATTR] = json.dumps({"method": METHOD, "parts": records})
