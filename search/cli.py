"""`robustprune` command line: run | resume | trial | pareto | export | ui.

Bad input prints one line naming the field and the allowed values and exits 2,
before any file, cluster or MLflow run is created.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from trainables.data import DatasetUnavailable

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad user input: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _read_yaml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config: file not found: {path}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise UsageError(f"config: {path} must hold a mapping of keys to values")
    return data


# --------------------------------------------------------------------------- trial


def _trial_config(args):
    from trainables.config import TrialConfig

    raw = _read_yaml(args.config) if args.config else {}
    for key in ("dataset", "data_dir", "model", "criterion", "granularity", "ratio", "iterations",
                "seed", "device", "eval_size"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    if args.download:
        raw["download"] = True
    if args.epochs is not None:
        raw["baseline"] = {**raw.get("baseline", {}), "epochs": args.epochs}
    if args.finetune_epochs is not None:
        raw["finetune"] = {**raw.get("finetune", {}), "epochs": args.finetune_epochs}
    if args.attacks is not None:
        raw["attacks"] = [{"name": n.strip()} for n in args.attacks.split(",") if n.strip()]
    if args.eps is not None:
        raw["attacks"] = [{**a, "eps": args.eps} for a in raw.get("attacks", [{"name": "fgsm"}, {"name": "pgd"}])]
    return TrialConfig.model_validate(raw)


def cmd_trial(args) -> int:
    from trainables.store import load_payload, model_from_payload, save_model
    from trainables.trial import Baseline, evaluate, load_data, run_trial, train_baseline
    from trainables.train import resolve_device

    cfg = _trial_config(args)
    out = Path(args.out)
    if args.baseline:
        payload = load_payload(args.baseline)
        model = model_from_payload(payload)
        baseline = Baseline(payload, evaluate(model, load_data(cfg), cfg, resolve_device(cfg.device)))
    else:
        print(f"training baseline {cfg.model} on {cfg.dataset} ({cfg.baseline.epochs} epochs)...", file=sys.stderr)
        baseline = train_baseline(cfg, quiet=args.quiet)
    result = run_trial(cfg, baseline, quiet=args.quiet)
    # Files are written only once everything succeeded; each write is atomic.
    out.mkdir(parents=True, exist_ok=True)
    save_model(result.model, result.spec, out / "model.pt")
    if not args.baseline:
        save_model(baseline.model(), baseline.payload["spec"], out / "baseline.pt")
    doc = {**result.metrics, "config": cfg.model_dump(mode="json")}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(out / "metrics.json")
    print(json.dumps(result.metrics, indent=2))
    print(f"wrote {out / 'metrics.json'} and {out / 'model.pt'}", file=sys.stderr)
    return 0


def add_trial_parser(sub) -> None:
    p = sub.add_parser("trial", help="run one pruning trial without Ray/MLflow")
    p.add_argument("--config", help="YAML file with trial fields (flags override it)")
    p.add_argument("--dataset")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--download", action="store_true", help="download CIFAR if missing (needs network)")
    p.add_argument("--model")
    p.add_argument("--criterion")
    p.add_argument("--granularity")
    p.add_argument("--ratio", type=float)
    p.add_argument("--iterations", type=int)
    p.add_argument("--attacks", help="comma-separated attack names, e.g. fgsm,pgd")
    p.add_argument("--eps", type=float, help="pixel-space eps for every attack")
    p.add_argument("--epochs", type=int, help="baseline training epochs")
    p.add_argument("--finetune-epochs", dest="finetune_epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--eval-size", dest="eval_size", type=int)
    p.add_argument("--baseline", help="a trained baseline model.pt to prune instead of training one")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder for metrics.json and model.pt")
    p.set_defaults(func=cmd_trial)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="robustprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_trial_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"robustprune: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as e:
        from trainables.config import format_validation_error

        print(f"robustprune: error: {format_validation_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetUnavailable as e:
        print(f"robustprune: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
