"""``relaxomap train`` and ``relaxomap bench train``.

Options default to ``None`` and fall through to :class:`train.trainer.TrainConfig` (and its ModelConfig /
LossConfig): a value comes from the option if given, else from ``--config FILE.json`` (or, with
``--resume``, from the run's own ``config.json``), else from the dataclass default. Heavy imports happen
inside the commands.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["register", "train_command", "bench_train_command", "build_train_config"]


def build_train_config(*, config_file: str | None = None, resume: bool = False, **options: Any) -> Any:
    """The TrainConfig of a ``relaxomap train`` call (see the module docstring for the precedence).

    Parameters
    ----------
    config_file : a JSON file of TrainConfig fields (e.g. a run's ``config.json``), or None.
    resume : without ``config_file``, start from ``<out>/config.json`` of the run being resumed.
    options : ``store``, ``val_store``, ``arch``, ``physics_weight``, ``patch`` (0 = whole slices),
        ``steps``, ``batch_size``, ``lr``, ``out``, ``device``, ``num_workers``, ``seed``; None = not given.

    Raises
    ------
    click.UsageError : no store anywhere, or an unreadable / invalid configuration (the message names it).
    """
    from relaxomap.train.config import TrainConfig

    base: dict[str, Any] = {}
    source = None
    if config_file is not None:
        source = Path(config_file)
    elif resume and options.get("out") is not None and (Path(options["out"]) / "config.json").is_file():
        source = Path(options["out"]) / "config.json"
    if source is not None:
        try:
            base = json.loads(source.read_text())
        except (OSError, ValueError) as err:
            raise click.UsageError(f"configuration {source} could not be read: {err}") from None
        if not isinstance(base, dict):
            raise click.UsageError(f"configuration {source} must hold a JSON object of TrainConfig fields")
    for field in ("store", "val_store", "patch", "steps", "batch_size", "lr", "out", "device", "num_workers", "seed"):
        if options.get(field) is not None:
            base[field] = options[field]
    if options.get("patch") == 0:
        base["patch"] = None
    if options.get("arch") is not None:
        base["model"] = {**(base.get("model") or {}), "arch": options["arch"]}
    if options.get("physics_weight") is not None:
        base["loss"] = {**(base.get("loss") or {}), "physics": options["physics_weight"]}
    if "store" not in base:
        raise click.UsageError("--store is required (or give it in --config FILE.json)")
    try:
        return TrainConfig.from_dict(base)
    except (TypeError, ValueError) as err:
        where = f" (from {source})" if source is not None else ""
        raise click.UsageError(f"invalid training configuration{where}: {err}") from None


@click.command("train")
@click.option("--store", type=click.Path(dir_okay=False), default=None, help="Training store (relaxomap synth --out).")
@click.option("--val", "val_store", type=click.Path(dir_okay=False), default=None,
              help="Validation store. Default: the 'val' split of --store (its 'train' split is then trained on).")
@click.option("--model", "arch", type=click.Choice(["pe-unet", "unet", "channels"]), default=None,
              help="Architecture (see model.config).")
@click.option("--physics-weight", type=float, default=None, help="Weight of the physics-consistency loss.")
@click.option("--patch", type=int, default=None, help="Training crop side [px]; 0 = whole slices.")
@click.option("--steps", type=int, default=None, help="Optimisation steps of the whole run.")
@click.option("--batch-size", type=int, default=None, help="Samples per step and process.")
@click.option("--lr", type=float, default=None, help="Peak learning rate (AdamW).")
@click.option("--seed", type=int, default=None, help="Seed of initialisation, data order and crops.")
@click.option("--device", default=None, help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")
@click.option("--num-workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--resume", is_flag=True, default=False, help="Continue the run in --out from its last.pt.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON file of TrainConfig fields; options given on the command line override it.")
@click.option("--stop-after", type=int, default=None,
              help="Stop with a checkpoint after this many steps of this call (time-limited jobs).")
def train_command(resume: bool, config_file: str | None, stop_after: int | None, **options: Any) -> None:
    """Train a network on a synthetic store; writes config.json, last.pt, best.pt and metrics.jsonl to --out.

    Several GPUs or nodes: torchrun --nproc_per_node N -m relaxomap.train.cli train ...
    """
    from relaxomap.train.trainer import train

    config = build_train_config(config_file=config_file, resume=resume, **options)
    try:
        summary = train(config, resume=resume, stop_after=stop_after)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    if summary["rank"] != 0:
        return
    best = summary["best_val"]
    click.echo(
        f"trained {config.model.arch} to step {summary['step']} in {summary['seconds']:.1f} s "
        f"({summary['samples_per_s']:.2f} samples/s on {summary['device']}"
        + (f" x {summary['world_size']} processes" if summary["world_size"] > 1 else "") + ")"
    )
    click.echo(f"last loss {summary['last_loss']:.4g}; best validation masked L1 (normalised) "
               + (f"{best:.4g}" if best is not None else "n/a"))
    click.echo(f"checkpoints: {summary['last_checkpoint']}"
               + (f", {summary['best_checkpoint']}" if summary["best_checkpoint"] else ""))


@click.command("train")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, auto, ...")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Samples per training step.")
@click.option("--patch", type=int, default=128, show_default=True, help="Training crop side [px].")
@click.option("--slice-size", type=int, default=256, show_default=True, help="Whole-slice side [px].")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed repetitions (median reported).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed repetitions first.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--no-amp", is_flag=True, default=False, help="Disable mixed precision on CUDA.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the results here.")
def bench_train_command(device: str, batch_size: int, patch: int, slice_size: int, repeats: int, warmup: int,
                        threads: int | None, no_amp: bool, json_path: str | None) -> None:
    """Training samples/s (patches and whole slices) and inference ms/slice: pe-unet beside the plain U-Net."""
    from relaxomap.train.bench import bench_train

    try:
        res = bench_train(device=device, batch_size=batch_size, patch=patch, slice_size=slice_size,
                          warmup=warmup, repeats=repeats, amp=not no_amp, threads=threads)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    load = res["load_average_1min"]
    click.echo(f"device {res['device_name']} ({res['device']}), {res['threads']} threads, batch {batch_size}, "
               f"amp {res['amp']}, torch {res['torch']}, load average {load['before']} -> {load['after']}")
    archs = list(res["parameters"])
    click.echo(f"{'measurement':<34}" + "".join(f"{a:>12}" for a in archs) + f"{'ratio':>10}")
    labels = {"train_patch_samples_per_s": f"train samples/s, {patch}x{patch} patches",
              "train_slice_samples_per_s": f"train samples/s, {slice_size}x{slice_size} slices",
              "infer_ms_per_slice": f"inference ms / {slice_size}x{slice_size} slice"}
    for key, label in labels.items():
        row = res["results"][key]
        ratio = next((v for k, v in row.items() if k.startswith("ratio")), None)
        click.echo(f"{label:<34}" + "".join(f"{row[a]:>12.3g}" for a in archs)
                   + (f"{ratio:>10.2f}" if ratio is not None else ""))
    click.echo("parameters: " + ", ".join(f"{a} {n:,}" for a, n in res["parameters"].items()))
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


def register(main: click.Group, bench: click.Group) -> None:
    """Add this module's commands to the ``relaxomap`` group and its ``bench`` subgroup."""
    main.add_command(train_command)
    main.add_command(export_command)
    bench.add_command(bench_train_command)


@click.command("export")
@click.option("--ckpt", "src", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A run's best.pt or last.pt.")
@click.option("--out", "dst", required=True, type=click.Path(dir_okay=False), help="Inference checkpoint to write.")
@click.option("--raw-weights", is_flag=True, help="Export the raw weights instead of the EMA weights.")
@click.option("--half", is_flag=True, help="Store weights as float16 (half the size).")
def export_command(src: str, dst: str, raw_weights: bool, half: bool) -> None:
    """Slim inference checkpoint: one set of weights plus configs and training ranges, no optimiser state."""
    from relaxomap.train.checkpoint import export_for_inference

    try:
        path = export_for_inference(src, dst, use_ema=not raw_weights, half=half)
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
