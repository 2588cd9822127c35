"""The ``tpsep`` command line: ``tpsep COMMAND --help`` explains each command, and
``tpsep train MODEL --help`` lists that model's ``--option`` keys with their defaults.

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
from tpsep.doctor import add_doctor_command
from tpsep.evaluation import add_evaluate_command, add_leaderboard_command
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
    add_leaderboard_command(subparsers)
    add_doctor_command(subparsers)
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


# what each model's help shows as examples (any model also gets the generic ones)
MODEL_EXAMPLES = {
    "unet": ["tpsep train unet --minutes 5 --out runs/unet",
             "tpsep train unet --dataset /data/musdb18hq --epochs 50 --batch-size 16 --schedule plateau "
             "--out runs/unet-musdb",
             "tpsep train unet --option channels=32 --option max_channels=256 --minutes 30 --out runs/unet-wide"],
    "convtasnet": ["tpsep train convtasnet --max-steps 2000 --seconds 1 --lr 3e-3 --ema 0.999 --out runs/tasnet",
                   "tpsep train convtasnet --option X=7 --option R=3 --minutes 30 --out runs/tasnet-wide",
                   "tpsep train convtasnet --task enhance --option C=1 --minutes 10 --out runs/tasnet-enhance"],
}


def add_train_command(subparsers) -> argparse.ArgumentParser:
    """``tpsep train MODEL``: one sub-command per model, so that ``tpsep train MODEL --help``
    shows that model's own ``--option`` keys and defaults."""
    from tpsep.recipes import MODELS

    parser = subparsers.add_parser(
        "train", help="train a model (U-Net, Conv-TasNet, ...) and write checkpoints",
        description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="tpsep train MODEL --help lists the training flags and the model's --option keys with their "
               "defaults.")
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True,
                                   title="models (tpsep.recipes.MODELS)")
    for name, entry in sorted(MODELS.items()):
        add_model_train_parser(models, name, entry)
    return parser


def add_model_train_parser(models, name: str, entry) -> argparse.ArgumentParser:
    """``tpsep train NAME``: the training and data flags, and the keys of the model's config."""
    from tpsep.recipes import DataSettings
    from tpsep.train import TrainConfig

    summary = entry.description or f"the model {name!r}"
    parser = models.add_parser(
        name, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"tpsep train {name}: {summary}.\n\n{TRAIN_HELP}", epilog=model_options_help(name, entry))
    add_dataclass_flags(parser, TrainConfig, "training (tpsep.train.TrainConfig)")
    add_dataclass_flags(parser, DataSettings, "data (tpsep.recipes.DataSettings)")
    parser.add_argument("--out", dest="out_dir", default=None, metavar="DIR", help="same as --out-dir")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue exactly from a last.pt")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help=f"a field of the {name} config (repeatable), e.g. --option "
                             f"{_first_option(entry)}; the keys and defaults are listed below")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the key figures to this JSON file")
    parser.set_defaults(func=run_train_command)
    return parser


def _first_option(entry) -> str:
    first = fields(entry.config)[0]
    return f"{first.name}={first.default}"


def config_comments(config_type) -> dict[str, str]:
    """The end-of-line comment of each field in a config dataclass's source: its explanation.

    ``N: int = 64  # encoder filters`` -> ``{"N": "encoder filters"}``. The comments are the
    documentation the model files already keep next to each default; none is fine.
    """
    import inspect
    import re

    try:
        source = inspect.getsource(config_type)
    except (OSError, TypeError):     # a class made at run time (tests) has no source to read
        return {}
    comments = {}
    for line in source.splitlines():
        match = re.match(r"\s+(\w+)\s*:[^=#]*=[^#]*#\s*(.*)$", line)
        if match:
            comments[match.group(1)] = re.sub(r"\s*#\s*noqa.*$", "", match.group(2)).strip()
    return comments


def _shown_default(value) -> str:
    """A default as the help shows it: long tuples (band edges) by their ends and their count."""
    if isinstance(value, tuple) and len(value) > 4:
        return f"({value[0]}, {value[1]}, ..., {value[-1]}) [{len(value)} values]"
    return str(value)


def model_options_help(name: str, entry) -> str:
    """The epilog of ``tpsep train NAME --help``: each ``--option`` key, its default, what it is."""
    config_type = entry.config
    comments = config_comments(config_type)
    defaults = {f.name: _shown_default(value) for f, value in zip(fields(config_type),
                                                                  asdict(config_type()).values())}
    # the comments line up after the usual settings; a long one (a tuple) puts its comment below
    width = min(24, max(len(f"{key}={value}") for key, value in defaults.items()))
    lines = [f"{name} options (--option KEY=VALUE; {config_type.__module__}.{config_type.__name__}), "
             "with their defaults:"]
    for key, value in defaults.items():
        setting, comment = f"{key}={value}", comments.get(key, "")
        if len(setting) > width and comment:
            lines += [f"  {setting}", f"  {' ' * width}  {comment}"]
        else:
            lines.append(f"  {setting.ljust(width)}  {comment}".rstrip())
    examples = MODEL_EXAMPLES.get(name, [f"tpsep train {name} --minutes 5 --out runs/{name}"])
    examples = examples + [f"tpsep train {name} --resume runs/{name}/last.pt --minutes 5 --out runs/{name}"]
    lines += ["", "examples:"] + [f"  {example}" for example in examples]
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
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone prints and writes
    seed_everything(config.seed)                           # before anything random is built: same seed, same run
    separator = entry.separator(model_settings, verbose=main_process)
    recipe = entry.recipe(separator, settings, config.seed)
    extra = {"model_name": args.model, "model_config": asdict(model_settings), "dataset": str(recipe.dataset)}
    history = fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader, config,
                  resume=args.resume, extra=extra)
    # processes: how many trained together (torchrun's WORLD_SIZE, which fit() joins; 1 without torchrun)
    figures = {"model": args.model, **history.summary(), "out": config.out_dir,
               "processes": int(os.environ.get("WORLD_SIZE", "1"))}
    if main_process:
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
