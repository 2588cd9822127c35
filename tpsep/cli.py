"""The ``tpsep`` command line: ``tpsep COMMAND --help`` explains each command.

The commands are imported here by name, so what the command line depends on is
what this file imports. Every command ends with one line of key figures, and
``--json PATH`` writes them to a file. A user error (a bad option, a missing file,
a bad file) prints one line that names the problem and exits with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, asdict, fields

from tpsep.course import add_build_command, add_grade_command
from tpsep.data.commands import add_data_command
from tpsep.evaluation import add_evaluate_command
from tpsep.separate import add_separate_command

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, KeyError)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tpsep",
        description="Audio source separation lab course: build the notebooks, inspect the data, "
                    "train, separate and evaluate models.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_build_command(subparsers)
    add_grade_command(subparsers)
    add_data_command(subparsers)
    add_train_command(subparsers)
    add_separate_command(subparsers)
    add_evaluate_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"tpsep {args.command}: error: {message}", file=sys.stderr)
        return 2


# ---- tpsep train MODEL: the flags are made from the dataclasses, so each default exists once ----

TRAIN_HELP = """\
Train a model of the course and keep its checkpoints.

The model's recipe (tpsep.recipes) builds its dataset loaders and its loss;
this command runs tpsep.train.fit on them. Training stops at the first limit
reached: --epochs, --minutes or --max-steps (none: one epoch). It writes
OUT/best.pt (lowest validation loss), OUT/last.pt (to resume with --resume
OUT/last.pt, exactly where it stopped) and OUT/log.jsonl (plus TensorBoard logs
in OUT/tensorboard if tensorboard is installed).

On a laptop CPU, a few minutes give a loss curve that goes down; a GPU gives
real results. Several GPUs (or CPU processes):
  torchrun --nproc_per_node=2 -m tpsep train unet --minutes 30
"""


def _flag_type(annotation: str):
    """The argparse type of a dataclass field, from its annotation (``"int | None"`` -> int)."""
    for name, kind in (("bool", "bool"), ("int", int), ("float", float)):
        if annotation.startswith(name):
            return kind
    return str


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_dataclass_flags(parser, dataclass_type, title: str) -> None:
    """One ``--flag`` per field of ``dataclass_type``, with its default and its help text."""
    group = parser.add_argument_group(title)
    for f in fields(dataclass_type):
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        kind = _flag_type(str(f.type))
        if kind == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                               help=help_text)
        else:
            parse = _none_or(kind) if "None" in str(f.type) else kind
            group.add_argument(flag, dest=f.name, type=parse, default=default, help=help_text,
                               metavar=f.name.upper())


def add_train_command(subparsers) -> argparse.ArgumentParser:
    from tpsep.recipes import MODELS, DataSettings
    from tpsep.train import TrainConfig

    parser = subparsers.add_parser("train", help="train a model (U-Net, Conv-TasNet, ...) and write checkpoints",
                                   description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=_model_options_help(MODELS))
    parser.add_argument("model", choices=sorted(MODELS), help="which model to train")
    add_dataclass_flags(parser, TrainConfig, "training (tpsep.train.TrainConfig)")
    add_dataclass_flags(parser, DataSettings, "data (tpsep.recipes.DataSettings)")
    parser.add_argument("--out", dest="out_dir", default=None, metavar="DIR", help="same as --out-dir")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue exactly from a last.pt")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a field of the model's config (repeatable), e.g. --option channels=32; "
                             "the keys and defaults of each model are listed below")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the key figures to this JSON file")
    parser.set_defaults(func=run_train_command)
    return parser


def _model_options_help(models) -> str:
    lines = ["model options (--option KEY=VALUE), with their defaults:"]
    for name, entry in sorted(models.items()):
        defaults = asdict(entry.config())
        lines.append(f"  {name}: {entry.description}")
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    lines += ["", "examples:",
              "  tpsep train unet --minutes 5 --out runs/unet",
              "  tpsep train unet --dataset /data/musdb18hq --epochs 50 --batch-size 16 --schedule plateau --out runs/unet-musdb",
              "  tpsep train convtasnet --max-steps 2000 --seconds 1 --lr 3e-3 --ema 0.999 --out runs/tasnet",
              "  tpsep train convtasnet --option X=7 --option R=3 --minutes 30 --out runs/tasnet-wide",
              "  tpsep train unet --resume runs/unet/last.pt --minutes 5 --out runs/unet"]
    return "\n".join(lines)


def parse_options(items: list[str]) -> dict:
    """``["channels=32", "norm=gLN"]`` -> ``{"channels": 32, "norm": "gLN"}`` (numbers, booleans parsed)."""
    import ast
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def run_train_command(args) -> int:
    """Run ``tpsep train``: print one line of key figures (and write them to ``--json``); exit code 0."""
    from tpsep import seed_everything
    from tpsep.checkpoints import model_config
    from tpsep.recipes import MODELS, DataSettings
    from tpsep.train import TrainConfig, check_config, fit

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    check_config(config)                                   # before minutes of data loading, not after
    settings = DataSettings(**{f.name: getattr(args, f.name) for f in fields(DataSettings)})
    entry = MODELS[args.model]
    model_settings = model_config(args.model, parse_options(args.option))
    seed_everything(config.seed)                           # before anything random is built: same seed, same run
    separator = entry.separator(model_settings, verbose=True)
    recipe = entry.recipe(separator, settings, config.seed)
    extra = {"model_name": args.model, "model_config": asdict(model_settings), "dataset": str(recipe.dataset)}
    history = fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader, config,
                  resume=args.resume, extra=extra)
    figures = {"model": args.model, **history.summary(), "out": config.out_dir}
    if int(os.environ.get("RANK", "0")) == 0:
        best = "none" if figures["best_valid"] is None else f"{figures['best_valid']:.5g}"
        last = "none" if figures["train_loss"] is None else f"{figures['train_loss']:.5g}"
        print(f"train: model={args.model} steps={figures['steps']} train_loss={last} best_valid={best} "
              f"minutes={figures['minutes']:.2f} stopped={figures['stopped_because']} out={config.out_dir}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
