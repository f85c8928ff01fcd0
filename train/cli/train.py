"""``relaxomap train``, ``relaxomap export`` and ``relaxomap bench train``.

Options default to ``None`` and fall through to :class:`train.config.TrainConfig` (and its ModelConfig /
LossConfig): a value comes from the option if given, else from ``--config FILE.json`` (or, with
``--resume``, from the run's own ``config.json``), else from the dataclass default, which ``--help`` shows.
Heavy imports happen inside the commands.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from relaxomap.train.cli._options import LibraryDefault, deprecated_spelling, given

__all__ = ["train_command", "export_command", "bench_train_command", "build_train_config"]

_TRAIN = "relaxomap.train.config:TrainConfig"
_BENCH = "relaxomap.train.bench:bench_train"
#: TrainConfig fields given by an option of the same name.
_PLAIN_FIELDS = ("store", "val_store", "patch", "steps", "warmup_steps", "batch_size", "lr", "out", "device",
                 "num_workers", "seed")


def _warmup_rule(_: Any) -> str:
    from relaxomap.train.config import MAX_DEFAULT_WARMUP_STEPS

    return f"min({MAX_DEFAULT_WARMUP_STEPS}, steps // 10)"


def _read_config_file(source: Path) -> dict[str, Any]:
    try:
        base = json.loads(source.read_text())
    except (OSError, ValueError) as err:
        raise click.UsageError(f"configuration {source} could not be read: {err}") from None
    if not isinstance(base, dict):
        raise click.UsageError(f"configuration {source} must hold a JSON object of TrainConfig fields")
    return base


def build_train_config(*, config_file: str | None = None, resume: bool = False, **options: Any) -> Any:
    """The TrainConfig of a ``relaxomap train`` call (see the module docstring for the precedence).

    Parameters
    ----------
    config_file : a JSON file of TrainConfig fields (e.g. a run's ``config.json``), or None.
    resume : without ``config_file``, start from ``<out>/config.json`` of the run being resumed.
    options : ``store``, ``val_store``, ``arch``, ``physics_weight``, ``patch`` (0 = whole slices),
        ``steps``, ``warmup_steps``, ``batch_size``, ``lr``, ``out``, ``device``, ``num_workers``, ``seed``;
        None = not given.

    Raises
    ------
    click.UsageError : no store anywhere, or an unreadable / invalid configuration (the message names it).
    """
    from relaxomap.train.config import TrainConfig

    source = None
    if config_file is not None:
        source = Path(config_file)
    elif resume and options.get("out") is not None and (Path(options["out"]) / "config.json").is_file():
        source = Path(options["out"]) / "config.json"
    base = _read_config_file(source) if source is not None else {}
    base.update(given(**{field: options.get(field) for field in _PLAIN_FIELDS}))
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


def _summary(summary: dict[str, Any], arch: str) -> list[str]:
    best = summary["best_val"]
    return [
        f"trained {arch} to step {summary['step']} in {summary['seconds']:.1f} s "
        f"({summary['samples_per_s']:.2f} samples/s on {summary['device']}"
        + (f" x {summary['world_size']} processes" if summary["world_size"] > 1 else "") + ")",
        f"last loss {summary['last_loss']:.4g}; best validation masked L1 (normalised) "
        + (f"{best:.4g}" if best is not None else "n/a"),
        f"checkpoints: {summary['last_checkpoint']}"
        + (f", {summary['best_checkpoint']}" if summary["best_checkpoint"] else ""),
    ]


@click.command("train")
@click.option("--store", type=click.Path(dir_okay=False), default=None, help="Training store (relaxomap synth --out).")
@click.option("--val", "val_store", type=click.Path(dir_okay=False), default=None,
              help="Validation store. Default: the 'val' split of --store (its 'train' split is then trained on).")
@click.option("--arch", type=click.Choice(["pe-unet", "unet", "channels"]), cls=LibraryDefault,
              default_from=("relaxomap.model.config:ModelConfig", "arch"), help="Architecture (see model.config).")
@click.option("--model", "old_arch", type=click.Choice(["pe-unet", "unet", "channels"]), default=None, hidden=True,
              help="Deprecated spelling of --arch.")
@click.option("--physics-weight", type=float, cls=LibraryDefault,
              default_from=("relaxomap.train.losses:LossConfig", "physics"),
              help="Weight of the physics-consistency loss.")
@click.option("--patch", type=int, cls=LibraryDefault, default_from=(_TRAIN, "patch"),
              help="Training crop side [px]; 0 = whole slices.")
@click.option("--steps", type=int, cls=LibraryDefault, default_from=(_TRAIN, "steps"),
              help="Optimisation steps of the whole run.")
@click.option("--warmup-steps", type=int, cls=LibraryDefault, default_from=(_TRAIN, "warmup_steps"),
              show_as=_warmup_rule, help="Linear learning-rate warm-up steps (<= --steps).")
@click.option("--batch-size", type=int, cls=LibraryDefault, default_from=(_TRAIN, "batch_size"),
              help="Samples per step and process.")
@click.option("--lr", type=float, cls=LibraryDefault, default_from=(_TRAIN, "lr"), help="Peak learning rate (AdamW).")
@click.option("--seed", type=int, cls=LibraryDefault, default_from=(_TRAIN, "seed"),
              help="Seed of initialisation, data order and crops.")
@click.option("--device", cls=LibraryDefault, default_from=(_TRAIN, "device"),
              help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")
@click.option("--num-workers", type=int, cls=LibraryDefault, default_from=(_TRAIN, "num_workers"),
              help="DataLoader worker processes.")
@click.option("--resume", is_flag=True, default=False, help="Continue the run in --out from its last.pt.")
@click.option("--out", type=click.Path(file_okay=False), cls=LibraryDefault, default_from=(_TRAIN, "out"),
              help="Run directory.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON file of TrainConfig fields; options given on the command line override it.")
@click.option("--stop-after", type=int, default=None,
              help="Stop with a checkpoint after this many steps of this call (time-limited jobs).")
def train_command(resume: bool, config_file: str | None, stop_after: int | None, arch: str | None,
                  old_arch: str | None, **options: Any) -> None:
    """Train a network on a synthetic store; writes config.json, last.pt, best.pt and metrics.jsonl to --out.

    Several GPUs or nodes: torchrun --nproc_per_node N -m relaxomap.train.cli train ...
    """
    from relaxomap.train.trainer import train

    arch = deprecated_spelling(arch, old_arch, new="--arch", old="--model", command="train")
    config = build_train_config(config_file=config_file, resume=resume, arch=arch, **options)
    try:
        summary = train(config, resume=resume, stop_after=stop_after)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    if summary["rank"] == 0:
        for line in _summary(summary, config.model.arch):
            click.echo(line)


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


@click.command("train")
@click.option("--device", cls=LibraryDefault, default_from=(_BENCH, "device"), help="cpu, cuda, auto, ...")
@click.option("--batch-size", type=int, cls=LibraryDefault, default_from=(_BENCH, "batch_size"),
              help="Samples per training step.")
@click.option("--patch", type=int, cls=LibraryDefault, default_from=(_BENCH, "patch"), help="Training crop side [px].")
@click.option("--slice-size", type=int, cls=LibraryDefault, default_from=(_BENCH, "slice_size"),
              help="Whole-slice side [px].")
@click.option("--repeats", type=int, cls=LibraryDefault, default_from=(_BENCH, "repeats"),
              help="Timed repetitions (median reported).")
@click.option("--warmup", type=int, cls=LibraryDefault, default_from=(_BENCH, "warmup"),
              help="Untimed repetitions first.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--no-amp", is_flag=True, default=False, help="Disable mixed precision on CUDA.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the results here.")
def bench_train_command(no_amp: bool, json_path: str | None, **options: Any) -> None:
    """Training samples/s (patches and whole slices) and inference ms/slice: pe-unet beside the plain U-Net."""
    from relaxomap.atomic import atomic_write_text
    from relaxomap.train.bench import bench_train, format_bench_table

    try:
        res = bench_train(**given(**options), amp=not no_amp)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(format_bench_table(res))
    if json_path:
        atomic_write_text(json_path, json.dumps(res, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
