"""``relaxomap predict``, ``relaxomap render`` and ``relaxomap demo``: thin click wrappers.

Each command parses its options, calls one library function (:func:`train.clinical.predict.run_predict`,
:func:`train.clinical.render.run_render`, :func:`train.clinical.demo.run_demo`) and prints a summary. Errors about
inputs (missing files, missing or implausible parameters, impossible protocols, inputs the model was not made
for, bad geometry, output locations that cannot be written) are shown as one ``Error: ...`` line, exit status 1.
Options without a value of their own fall through to the library's defaults (shown in ``--help``).
"""
from __future__ import annotations

from typing import Any, Callable

import click

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.train.cli._options import LibraryDefault, deprecated_spelling, given, user_errors
from relaxomap.train.clinical.map_files import MAP_FILES, MASK_FILE, PROVENANCE_FILE
from relaxomap.train.clinical.sidecar import CONTRAST_LABELS

__all__ = ["predict_command", "render_command", "demo_command"]

_FIELDS = (("tr", "tr_ms", "RepetitionTime"), ("te", "te_ms", "EchoTime"), ("ti", "ti_ms", "InversionTime"))
_PREDICT = "relaxomap.train.clinical.predict:run_predict"
_DEMO = "relaxomap.train.clinical.demo:run_demo"
_RENDER = "relaxomap.train.clinical.render:run_render"
_DEVICE_HELP = "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps."
_DEFAULT_MODEL_HELP = "default: the model shipped in train/clinical/default_model/."


def _param_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for c in reversed(CONTRASTS):
        for flag, _key, bids in reversed(_FIELDS):
            fn = click.option(f"--{c}-{flag}", f"{c}_{flag}", type=float, default=None, metavar="MS",
                              help=f"{CONTRAST_LABELS[c]} {bids} [ms]; overrides the sidecar / DICOM header.")(fn)
    return fn


def _print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)


@click.command("predict")
@click.option("--t1w", type=click.Path(), default=None, help="T1w image: NIfTI file (+ BIDS .json sidecar) or "
              "DICOM series directory. Defines the output grid.")
@click.option("--t2w", type=click.Path(), default=None, help="T2w image (NIfTI or DICOM directory).")
@click.option("--flair", type=click.Path(), default=None, help="T2-FLAIR image (NIfTI or DICOM directory); "
              "optional, predicted without it when absent.")
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Output directory (written atomically).")
@click.option("--checkpoint", type=click.Path(), default=None, help=f"Checkpoint (.pt); {_DEFAULT_MODEL_HELP}")
@click.option("--model", "old_checkpoint", type=click.Path(), default=None, hidden=True,
              help="Deprecated spelling of --checkpoint.")
@click.option("--mask", "mask_path", type=click.Path(), default=None,
              help="Brain mask NIfTI (non-zero = brain); default: a simple automatic mask.")
@click.option("--no-resample", is_flag=True, help="Stop with an error instead of resampling T2w / FLAIR / mask "
              "onto the T1w grid.")
@click.option("--device", cls=LibraryDefault, default_from=(_PREDICT, "device"), help=_DEVICE_HELP)
@click.option("--batch", type=click.IntRange(1, 1024), cls=LibraryDefault, default_from=(_PREDICT, "batch"),
              help="Slices per forward pass (memory bound).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out directory.")
@click.option("--force", is_flag=True, help="Predict even for inputs the model was not made for (gradient-echo / "
              "MPRAGE or 3-D variable-flip-angle images, post-contrast images, other field strengths); "
              "provenance.json records it. Impossible protocols are refused regardless.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--refine", is_flag=True, help="Refine the network's maps with the exam's physics (gains, B1, "
              "refocusing angles, inversion efficiency fitted; needs all three contrasts): writes residual maps, "
              "refine.json and ROI tables; the network's maps go to network/. See docs/refine.md.")
@click.option("--b1map", type=click.Path(), default=None, help="Measured transmit field for --refine (NIfTI, "
              "relative scale or percent, e.g. BIDS TB1map); B1 is then not fitted.")
@click.option("--labels", "labels_path", type=click.Path(), default=None, help="Label image for --refine's ROI "
              "table (1 CSF, 2 GM, 3 WM, 13 deep GM, 12/14-17 lesions); default: an automatic 3-class split of T1.")
@click.option("--lesion-mask", type=click.Path(), default=None, help="Lesion mask for --refine's ROI table.")
@click.option("--refine-config", type=click.Path(dir_okay=False), default=None, help="JSON of RefineConfig fields "
              "(priors, dictionary grid, solver; docs/refine.md) overriding the defaults for --refine.")
@_param_options
@user_errors
def predict_command(t1w: str | None, t2w: str | None, flair: str | None, out_dir: str, checkpoint: str | None,
                    old_checkpoint: str | None, mask_path: str | None, no_resample: bool, device: str | None,
                    batch: int | None, overwrite: bool, force: bool, quiet: bool, refine: bool, b1map: str | None,
                    labels_path: str | None, lesion_mask: str | None, refine_config: str | None,
                    **params: float | None) -> None:
    """Predict T1 [ms], T2 [ms] and PD maps from T1w / T2w / T2-FLAIR images and their TR/TE/TI.

    Sequence parameters come from BIDS sidecars (seconds) next to NIfTI files, from DICOM headers (ms),
    or from the --<contrast>-tr/-te/-ti flags (ms), which override both. Inputs are checked before the
    model runs: see "What relaxomap refuses" in README.md.
    """
    from relaxomap.train.clinical.predict import run_predict

    checkpoint = deprecated_spelling(checkpoint, old_checkpoint, new="--checkpoint", old="--model",
                                     command="predict")
    flags = {c: {key: params[f"{c}_{flag}"] for flag, key, _ in _FIELDS} for c in CONTRASTS}
    prov = run_predict({"t1w": t1w, "t2w": t2w, "flair": flair}, out_dir, checkpoint=checkpoint,
                       mask_path=mask_path, param_flags=flags, resample=not no_resample, overwrite=overwrite,
                       progress=not quiet, force=force, refine=refine, b1map=b1map, labels_path=labels_path,
                       lesion_mask=lesion_mask, refine_config=_refine_config(refine_config),
                       **given(device=device, batch=batch))
    _print_warnings(prov["warnings"])
    for c, fields in prov["parameters"].items():
        vals = ", ".join(f"{k[:2].upper()} {v['value_ms']:g} ms" for k, v in fields.items())
        click.echo(f"{CONTRAST_LABELS[c]:5s}: {vals}")
    if "refine" in prov:
        r = prov["refine"]
        res = ", ".join(f"{c} {v:.1f} %" for c, v in r["median_abs_residual_pct"].items())
        click.echo(f"refined in {r['timings_s']['total']:.1f} s: median |residual| {res}; T1-scale sd "
                   f"{r['t1_scale_sd_pct']:.1f} %; wrote residual maps, refine.json, roi.csv")
    click.echo(f"wrote {', '.join(MAP_FILES.values())}, {MASK_FILE}, {PROVENANCE_FILE} to {out_dir} "
               f"({prov['runtime_s']:.1f} s on {prov['device']})")


def _refine_config(path: str | None) -> object:
    """The :class:`physics.refine.RefineConfig` of a ``--refine-config`` JSON file (None: defaults)."""
    if path is None:
        return None
    import json
    from pathlib import Path

    from relaxomap.physics.refine import RefineConfig

    try:
        return RefineConfig.from_dict(json.loads(Path(path).read_text()))
    except (OSError, TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise click.BadParameter(f"{path}: {err}", param_hint="--refine-config") from None


@click.command("render")
@click.option("--maps", "maps_dir", type=click.Path(), required=True,
              help="Directory with T1_ms.nii.gz, T2_ms.nii.gz, PD.nii.gz (e.g. a predict output).")
@click.option("--seq", type=click.Choice(["se", "tse", "ir_tse", "spgr", "mprage", "flair", "t1w", "t2w"]),
              required=True, help="Sequence kind, or t1w / t2w / flair for the 3 T clinical presets.")
@click.option("--tr", "tr_ms", type=float, default=None, metavar="MS", help="Repetition time [ms].")
@click.option("--te", "te_ms", type=float, default=None, metavar="MS", help="(Effective) echo time [ms].")
@click.option("--ti", "ti_ms", type=float, default=None, metavar="MS", help="Inversion time [ms].")
@click.option("--etl", type=int, default=None, help="Echo train length / readout pulses.")
@click.option("--esp", "esp_ms", type=float, default=None, metavar="MS", help="Echo spacing [ms].")
@click.option("--flip", "flip_deg", type=float, default=None, metavar="DEG", help="Excitation flip angle [deg].")
@click.option("--refocus", "refocus_deg", type=float, default=None, metavar="DEG",
              help="Refocusing flip angle [deg].")
@click.option("--preset", "preset_name", default=None, help="Start from a named preset (physics.protocol.PRESETS).")
@click.option("--out", "out_path", type=click.Path(), required=True, help="Output .nii.gz (sidecar .json beside).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out image and its sidecar.")
@click.option("--forward", type=click.Choice(["closed", "epg"]), cls=LibraryDefault, default_from=(_RENDER, "forward"),
              help="Forward model: closed-form steady state or extended phase graphs (spin-echo kinds).")
@click.option("--model", "old_forward", type=click.Choice(["closed", "epg"]), default=None, hidden=True,
              help="Deprecated spelling of --forward.")
@user_errors
def render_command(maps_dir: str, seq: str, tr_ms: float | None, te_ms: float | None, ti_ms: float | None,
                   etl: int | None, esp_ms: float | None, flip_deg: float | None, refocus_deg: float | None,
                   preset_name: str | None, out_path: str, overwrite: bool, forward: str | None,
                   old_forward: str | None) -> None:
    """Synthesise an MR image from T1 / T2 / PD maps at any protocol.

    For turbo spin-echo kinds a --te without --esp derives the echo spacing (and, from a preset, the echo
    train length) from TE; what was chosen is printed and kept in the sidecar (RelaxomapDerived).
    """
    from relaxomap.train.clinical.render import build_protocol, run_render

    forward = deprecated_spelling(forward, old_forward, new="--forward", old="--model", command="render")
    derived: dict[str, str] = {}
    protocol = build_protocol(seq, tr_ms=tr_ms, te_ms=te_ms, ti_ms=ti_ms, etl=etl, esp_ms=esp_ms,
                              flip_deg=flip_deg, refocus_deg=refocus_deg, preset_name=preset_name, derived=derived)
    side = run_render(maps_dir, protocol, out_path, overwrite=overwrite, derived=derived, **given(forward=forward))
    for fld, why in derived.items():
        click.echo(f"{fld} = {why}")
    click.echo(f"wrote {out_path} ({protocol.kind}, TR {protocol.tr_ms:g} ms, TE {protocol.te_ms:g} ms"
               + (f", TI {protocol.ti_ms:g} ms" if protocol.ti_ms else "")
               + f", {side['RelaxomapSignalModel']} model)")


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(), default="relaxomap_demo", show_default=True,
              help="Output directory.")
@click.option("--seed", type=click.IntRange(0, 10**6), cls=LibraryDefault, default_from=(_DEMO, "seed"),
              help="Demo case number (the phantom seed is taken outside the training seeds).")
@click.option("--checkpoint", type=click.Path(), default=None, help=f"Checkpoint; {_DEFAULT_MODEL_HELP}")
@click.option("--model", "old_checkpoint", type=click.Path(), default=None, hidden=True,
              help="Deprecated spelling of --checkpoint.")
@click.option("--device", cls=LibraryDefault, default_from=(_DEMO, "device"), help=_DEVICE_HELP)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out directory.")
@user_errors
def demo_command(out_dir: str, seed: int | None, checkpoint: str | None, old_checkpoint: str | None,
                 device: str | None, overwrite: bool) -> None:
    """Simulate a held-out case, predict its maps from the written files, report metrics and a figure."""
    from relaxomap.train.clinical.demo import format_table, run_demo

    checkpoint = deprecated_spelling(checkpoint, old_checkpoint, new="--checkpoint", old="--model", command="demo")
    report = run_demo(out_dir, checkpoint=checkpoint, overwrite=overwrite, **given(seed=seed, device=device))
    _print_warnings(report["warnings"])
    click.echo(format_table(report["metrics"]))
    click.echo(f"wrote inputs, truth, prediction, figure.png, metrics.json and metrics.md to {out_dir} "
               f"({report['runtime_s']:.1f} s)")
