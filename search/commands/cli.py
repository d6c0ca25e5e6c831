"""`robustprune` command line: run | resume | study | trial | pareto | report | export | ui | schema.

Bad input prints one line naming the field and the allowed values and exits 2,
before any file, cluster or MLflow run is created.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..driver.signals import exit_status, exit_within, stopping_like_ctrl_c
from .schema import add_schema_parser
from .study import add_study_parser, add_verbose_flag
from .study import print_outcome as print_study_outcome

# Imports that take seconds (torch, Ray, MLflow, the config models) are made where a command
# needs them, so that `--help` and a mistyped flag answer at once (tests/test_cli_startup.py).

EXIT_USAGE = 2
SHUTDOWN_GRACE_S = 15  # after a stopping signal, for atexit work (Ray's shutdown) before the exit is forced


class UsageError(Exception):
    """Bad user input: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# --------------------------------------------------------------------------- trial


def _trial_config(args):
    from trainables.attacks import ATTACKS
    from trainables.config import TrialConfig

    from ..config import parse_overrides, read_yaml_mapping

    raw = read_yaml_mapping(args.config) if args.config else {}
    for key in ("dataset", "data_dir", "test_shards", "image_size", "transforms", "model", "model_weights", "criterion",
                "granularity", "ratio", "iterations", "seed", "device", "val_size", "eval_size", "test_size"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    if args.download:
        raw["download"] = True
    if args.epochs is not None:
        raw["baseline"] = {**raw.get("baseline", {}), "epochs": args.epochs}
    if args.finetune_epochs is not None:
        raw["finetune"] = {**raw.get("finetune", {}), "epochs": args.finetune_epochs}
    if args.finetune_method is not None:
        raw["finetune"] = {**raw.get("finetune", {}), "method": args.finetune_method}
    if args.attacks is not None:
        raw["attacks"] = [{"name": n.strip()} for n in args.attacks.split(",") if n.strip()]
    if args.eps is not None:
        raw["attacks"] = [{**a, "eps": args.eps} if ATTACKS.get(a.get("name")) and ATTACKS[a["name"]].uses_eps
                          else a for a in raw.get("attacks", [{"name": "fgsm"}, {"name": "pgd"}])]
    if args.eps_grid is not None:
        raw["eps_grid"] = args.eps_grid
    if args.criterion_param:
        raw["criterion_params"] = {**raw.get("criterion_params", {}),
                                   **dict(parse_overrides(args.criterion_param, "--criterion-param"))}
    return TrialConfig.model_validate(raw)


def _number_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _check_baseline_fits(spec: dict, dataset: str, data) -> None:
    """A --baseline must have been trained on this dataset: same input shape and classes (and,
    for built-in models, whose first layer holds the dataset's statistics, the same mean)."""
    from trainables.models import is_builtin

    arch = spec["arch"]
    builtin = is_builtin(arch["name"])
    saved = (tuple(spec["input_shape"]), arch["num_classes"], [round(v, 4) for v in arch["mean"]] if builtin else "-")
    here = (tuple(data.shape), data.num_classes, [round(float(v), 4) for v in data.mean] if builtin else "-")
    if saved != here:
        raise UsageError(f"baseline: --baseline was trained on input {saved[0]}, {saved[1]} classes, mean "
                         f"{saved[2]}; dataset '{dataset}' has {here[0]}, {here[1]} classes, mean {here[2]}")


def cmd_trial(args) -> int:
    from trainables.store import load_payload, model_from_payload, save_model, write_text_atomic
    from trainables.test_eval import final_evaluation
    import torch

    from trainables.prune import check_prunable
    from trainables.trial import Baseline, evaluate, initial_model, load_data, run_trial, train_baseline
    from trainables.train import check_device_present, resolve_device

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"out: '{out}' is a file; give a folder for metrics.json and model.pt")
    payload = baseline_model = None
    if args.baseline:
        try:
            payload = load_payload(args.baseline)
        except (OSError, ValueError) as e:
            raise UsageError(f"baseline: cannot read {args.baseline}: {e}") from None
        try:
            baseline_model = model_from_payload(payload)
        except (KeyError, RuntimeError, ValueError):
            raise UsageError(f"baseline: {args.baseline}: its weights do not fit the architecture it names "
                             f"(damaged, or edited by hand)") from None
        saved = payload["spec"]["arch"]["name"]
        if args.model not in (None, saved):
            raise UsageError(f"model: --baseline holds a '{saved}', not a '{args.model}'; drop --model or match it")
        args.model = saved
    cfg = _trial_config(args)
    try:
        check_device_present(cfg.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    data, device = load_data(cfg), resolve_device(cfg.device)
    if payload is not None:
        _check_baseline_fits(payload["spec"], cfg.dataset, data)
        baseline = Baseline(payload, evaluate(baseline_model, data, cfg, device))
    else:
        try:  # weights, classes, image size and the channel graph checked before any training
            model, _ = initial_model(cfg, data)
            check_prunable(model, [cfg.granularity], torch.zeros(1, *data.shape))
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(f"training baseline {cfg.model} on {cfg.dataset} ({cfg.baseline.epochs} epochs)...", file=sys.stderr)
        baseline = train_baseline(cfg, quiet=args.quiet)
    result = run_trial(cfg, baseline, quiet=args.quiet)
    # the test split, measured once at the end, for the pruned model and its baseline
    result.metrics.update(final_evaluation(result.model, data, cfg, device))
    result.metrics.update({f"{k}_baseline": v for k, v in
                           final_evaluation(baseline.model(), data, cfg, device).items()})
    # Files are written only once everything succeeded; each write is atomic.
    out.mkdir(parents=True, exist_ok=True)
    save_model(result.model, result.spec, out / "model.pt")
    if not args.baseline:
        save_model(baseline.model(), baseline.payload["spec"], out / "baseline.pt")
    doc = {**result.metrics, **cfg.records(), "config": cfg.model_dump(mode="json")}
    write_text_atomic(out / "metrics.json", json.dumps(doc, indent=2))
    print(json.dumps(result.metrics, indent=2))
    print(f"wrote {out / 'metrics.json'} and {out / 'model.pt'}", file=sys.stderr)
    return 0


def add_trial_parser(sub) -> None:
    p = sub.add_parser("trial", help="run one pruning trial without Ray/MLflow")
    p.add_argument("--config", help="YAML file with trial fields (flags override it)")
    p.add_argument("--dataset")
    p.add_argument("--data-dir", dest="data_dir", help="a folder of data files; webdataset: the training shards")
    p.add_argument("--test-shards", dest="test_shards", help="webdataset: the test shards (path or URL, {000..099})")
    p.add_argument("--download", action="store_true", help="download CIFAR if missing (needs network)")
    p.add_argument("--image-size", dest="image_size", type=int, help="streamed datasets: crop side (default 224)")
    p.add_argument("--transforms", help="imagenet, cifar, none, timm or python:MODULE:FN (default: the data's; "
                                        "knobs: in --config)")
    p.add_argument("--model", help="a built-in name, torchvision:NAME, timm:NAME or python:MODULE:CALLABLE")
    p.add_argument("--model-weights", dest="model_weights",
                   help="the model's trained weights (state_dict, checkpoint or .safetensors): the baseline")
    p.add_argument("--criterion")
    p.add_argument("--granularity")
    p.add_argument("--criterion-param", dest="criterion_param", action="append", metavar="KEY=VALUE",
                   help="a parameter of the criterion, e.g. pooling=mean (repeatable)")
    p.add_argument("--ratio", type=float)
    p.add_argument("--iterations", type=int)
    p.add_argument("--attacks", help="comma-separated attack names, e.g. fgsm,pgd")
    p.add_argument("--eps", type=float, help="pixel-space eps for every attack")
    p.add_argument("--epochs", type=int, help="baseline training epochs")
    p.add_argument("--finetune-epochs", dest="finetune_epochs", type=int)
    p.add_argument("--finetune-method", dest="finetune_method",
                   help="natural (default), pgd_at, trades or fgsm_rs; budgets in --config's finetune section")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--val-size", dest="val_size", type=int, help="validation images held out of training")
    p.add_argument("--eval-size", dest="eval_size", type=int, help="validation images the attacks run on")
    p.add_argument("--test-size", dest="test_size", type=int, help="test images of the final evaluation (default all)")
    p.add_argument("--eps-grid", dest="eps_grid", type=_number_list, help="robustness curve, e.g. 0,0.05,0.1")
    p.add_argument("--baseline", help="a trained baseline model.pt to prune instead of training one")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder for metrics.json and model.pt")
    p.set_defaults(func=cmd_trial)


# --------------------------------------------------------------------------- search


def _print_outcome(outcome) -> None:
    from ..front.table import front_table
    from .ui_links import print_ui_links

    state = "finished" if outcome.complete else "stopped early"
    print(f"\nsearch {state}: {outcome.finished} trials finished, {outcome.errored} failed")
    print(f"Pareto front ({len(outcome.front)} models):")
    print(front_table(outcome.front, outcome.notes))
    print(f"\nexperiment folder: {outcome.experiment_path}")
    if not outcome.complete:
        print(f"continue with:    robustprune resume {outcome.experiment_path}")
    print_ui_links(outcome)


def cmd_run(args) -> int:
    from ..config import load_config

    cfg = load_config(args.config, args.set or [])  # validated before Ray or MLflow is touched
    from ..driver.runner import run_search

    outcome = run_search(cfg, address=args.address, verbose=args.verbose)
    _print_outcome(outcome)
    return 0 if outcome.complete else 1


def cmd_resume(args) -> int:
    from ..driver.runner import SearchFileError, absolute_experiment_path, resume_search, search_kind

    path = absolute_experiment_path(args.experiment_path)
    try:
        if search_kind(path) == "study":
            from ..driver.study.runner import resume_study

            outcome = resume_study(path, address=args.address, verbose=args.verbose)
            print_study_outcome(outcome)
        else:
            outcome = resume_search(path, address=args.address, verbose=args.verbose)
            _print_outcome(outcome)
    except SearchFileError as e:
        raise UsageError(str(e)) from None
    return 0 if outcome.complete else 1


def _tracking_uri(args) -> str:
    """The store pareto/export/ui read, checked first (a server that is down, a corrupt file)."""
    from ..config import ExperimentConfig
    from ..driver.preflight import check_tracking_uri

    uri = ExperimentConfig(tracking_uri=args.tracking_uri).resolved_tracking_uri()
    check_tracking_uri(uri)
    return uri


def cmd_pareto(args) -> int:
    from .export import front_rows
    from ..front.table import front_notes, front_table
    from ..tracking.lookup import find_parent_run
    from ..tracking.schema import objectives_of

    uri = _tracking_uri(args)
    try:
        parent = find_parent_run(uri, args.experiment, args.run_id)
    except LookupError as e:
        raise UsageError(str(e)) from None
    rows = sorted(front_rows(uri, parent), key=lambda r: -r["robust_acc"])
    print(f"Pareto front of '{args.experiment}' (run {parent.info.run_id}, {len(rows)} models):")
    print(front_table(rows, front_notes(rows, objectives_of(parent))))
    _say_if_unfinished(parent)
    return 0


def _say_if_unfinished(parent) -> None:
    """A front read from a search that is not FINISHED is partial: say why and what to do."""
    from ..driver.lock import driver_state

    status, path = parent.info.status, parent.data.tags.get("experiment_path", "EXPERIMENT_PATH")
    if status == "FINISHED":
        return
    if status == "RUNNING":
        state = driver_state(path)
        if state == "running":
            print("note: the search is still running; this front is partial", file=sys.stderr)
            return
        why = "its driver died" if state == "dead" else "it is running elsewhere, or its driver died"
    else:
        why = f"it ended {status}"
    print(f"note: the search is not finished ({why}); this front is partial; continue it with: "
          f"robustprune resume {path}", file=sys.stderr)


def cmd_export(args) -> int:
    from .export import FORMATS, Constraints, ExportTargetTaken, NoModelFits, export_model
    from ..tracking.lookup import find_parent_run

    from trainables.registry import one_of

    try:
        formats = [one_of(f.strip(), FORMATS, "format") for f in args.format.split(",")]
    except ValueError as e:
        raise UsageError(f"format: {e}") from None
    if args.latency_metric and args.max_latency_ms is None:
        raise UsageError("--latency-metric: names the latency --max-latency-ms bounds; give --max-latency-ms too")
    constraints = Constraints(args.max_flops, args.min_robust_acc, args.min_clean_acc, args.max_latency_ms)
    uri = _tracking_uri(args)
    try:
        card = export_model(uri, args.experiment, Path(args.out), formats, constraints, args.run_id, args.name,
                            args.force, args.latency_metric)
    except (NoModelFits, LookupError, ExportTargetTaken) as e:
        raise UsageError(str(e)) from None
    _say_if_unfinished(find_parent_run(uri, args.experiment, card["search_run_id"]))
    m = card["metrics"]
    print(f"exported run {card['source_run_id']}: flops {m['flops']:.0f}, clean {m['clean_acc']:.3f}, "
          f"robust {m['robust_acc']:.3f} -> {args.out} ({', '.join(formats)}); registered "
          f"{card['registered_model']['name']} v{card['registered_model']['version']} @best")
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    from ..tracking.lookup import find_parent_run
    from ..tracking.records import SearchRecords

    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"out: {out} is a folder; name the HTML file, e.g. {out / 'report.html'}")
    uri = _tracking_uri(args)
    try:
        parent = find_parent_run(uri, args.experiment, args.run_id)
    except LookupError as e:
        raise UsageError(str(e)) from None
    write_report(SearchRecords.open(uri, parent.info.experiment_id, parent.info.run_id), out)
    print(f"wrote {out}: self-contained, opens offline; also logged to run {parent.info.run_id} as report.html")
    _say_if_unfinished(parent)
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the server will: connections of a server just stopped (TIME_WAIT) do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen()
        except OSError as e:
            raise UsageError(f"port: cannot serve on {host}:{port} ({e.strerror}); pass --port N") from None


def cmd_ui(args) -> int:
    import os
    import subprocess

    from ..driver.signals import stop_process_group

    uri = _tracking_uri(args)
    _check_port_free(args.host, args.port)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port), "--workers", str(args.workers)]
    from ..tracking.lookup import ui_pages

    base = f"http://{args.host}:{args.port}/"
    pages = ui_pages(uri, args.experiment)
    if pages is None:
        raise UsageError(f"experiment: no MLflow experiment named '{args.experiment}' at {uri}")
    print(f"MLflow UI for {uri} on {base}", file=sys.stderr)
    for name, route in pages:
        print(f"{name}: {base}{route}", file=sys.stderr)
    sys.stderr.flush()
    # a session of its own: stopping `ui` (any signal, see signals.py) stops the server's whole group
    # MLflow's job runner (GenAI jobs; seven worker processes) serves nothing a search logs
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(cmd, start_new_session=True, env=env)
    try:
        return server.wait()
    finally:
        stop_process_group(server)


def add_search_parsers(sub) -> None:
    p = sub.add_parser("run", help="run a search from a YAML config")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: $RAY_ADDRESS or a local Ray")
    add_verbose_flag(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted search or study")
    p.add_argument("experiment_path")
    p.add_argument("--address")
    add_verbose_flag(p)
    p.set_defaults(func=cmd_resume)

    def tracking_args(q):
        q.add_argument("--experiment", default="robustprune", help="MLflow experiment (= experiment.name)")
        q.add_argument("--tracking-uri", dest="tracking_uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
        q.add_argument("--run-id", dest="run_id", help="a search's parent run (default: the newest)")

    p = sub.add_parser("pareto", help="print a search's Pareto front")
    tracking_args(p)
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("report", help="write a search's report: one self-contained HTML page")
    tracking_args(p)
    p.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export a model from the front")
    tracking_args(p)
    p.add_argument("--max-flops", dest="max_flops", type=float)
    p.add_argument("--min-robust-acc", dest="min_robust_acc", type=float)
    p.add_argument("--min-clean-acc", dest="min_clean_acc", type=float)
    p.add_argument("--max-latency-ms", dest="max_latency_ms", type=float,
                   help="bound on the trials' measured latency (default metric: the search's latency objective, "
                        "else latency_ms)")
    p.add_argument("--latency-metric", dest="latency_metric",
                   help="which latency --max-latency-ms bounds, e.g. latency_ms_onnxruntime_b1")
    p.add_argument("--format", default="torchscript,onnx,state_dict")
    p.add_argument("--name", help="registered model name (default: EXPERIMENT-pruned)")
    p.add_argument("--out", required=True, help="a new or empty folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder whole")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="start the MLflow UI (127.0.0.1 unless --host)")
    p.add_argument("--tracking-uri", dest="tracking_uri")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1: a personal UI; mlflow's own default is 4)")
    p.add_argument("--experiment", help="the experiment whose runs to link to (default: the newest search's)")
    p.set_defaults(func=cmd_ui)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="robustprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_search_parsers(sub)
    add_study_parser(sub)
    add_trial_parser(sub)
    add_schema_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per event, no bars
    try:
        args = build_parser().parse_args(argv)
        with stopping_like_ctrl_c():
            return args.func(args)
    except KeyboardInterrupt:  # Ctrl+C, SIGTERM or SIGHUP (signals.py): the command has cleaned up
        status, name = exit_status()
        print(f"robustprune: stopped by {name}", file=sys.stderr)
        exit_within(SHUTDOWN_GRACE_S, status)
        return status
    except Exception as e:
        message = _usage_message(e)
        if message is None:
            raise
        print(f"robustprune: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _usage_message(error: Exception) -> str | None:
    """The one line that bad input prints, or None for an error that is not the user's."""
    if isinstance(error, UsageError):
        return str(error)
    from pydantic import ValidationError

    from trainables.config import format_validation_error
    from trainables.data import DatasetUnavailable

    from ..config import ConfigError

    if isinstance(error, ValidationError):
        return format_validation_error(error)
    return str(error) if isinstance(error, (ConfigError, DatasetUnavailable)) else None


if __name__ == "__main__":
    sys.exit(main())
