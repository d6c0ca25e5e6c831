"""`robustprune study CONFIG [--set ...] [--address auto] [--dry-run]`: the paper's grid
(setups x granularity x criterion x ratio x iterations x fine-tuning method x seed) on the
cluster, answered with statistics."""
from __future__ import annotations

from collections import Counter


def print_plan(plans, cfg) -> None:
    """The dry run: cells per setup, the ones that cannot run and why, the baselines to train."""
    from ..driver.baseline import load_cached

    total = sum(len(p.runnable) for p in plans)
    print(f"study {cfg.experiment.name}: {total} cells to run, {len(cfg.seeds)} seed(s) each "
          f"({', '.join(map(str, cfg.seeds))}); {sum(len(p.cells) for p in plans) - total} not applicable")
    for p in plans:
        print(f"\nsetup {p.setup.name}: {len(p.cells)} cells, {len(p.runnable)} to run")
        if p.problem:
            print(f"  cannot run yet: {p.problem}")
        for granularity, count in Counter(c.granularity for c in p.cells).items():
            why = p.not_applicable.get(granularity)
            state = (f"not applicable ({why})" if why else "applicable" if p.checked else
                     "applicable if the network prunes so (checked when the study builds it)")
            print(f"  {granularity}: {count} cells, {state}")
        if not p.configs:
            print(f"  baselines: {len(cfg.seeds)} (one per seed), trained or measured once the setup can run")
        for seed, scfg in p.configs.items():
            cached = load_cached(scfg.experiment.resolved_storage_path(), scfg.fixed_trial_config(),
                                 scfg.trial_device_type())
            print(f"  baseline seed {seed}: {scfg.model.name} on {scfg.data.name}, "
                  f"{'cached' if cached else f'to train ({scfg.baseline.epochs} epochs)'}")
    print("\ndry run: nothing was started")


def print_outcome(outcome) -> None:
    from .ui_links import print_ui_links

    state = "finished" if outcome.complete else "stopped early"
    print(f"\nstudy {state}: {outcome.logged} of {outcome.cells} cells measured, {outcome.failed} failed")
    print(f"answer: {outcome.summary}")
    print(f"\nexperiment folder: {outcome.experiment_path}")
    if not outcome.complete:
        print(f"continue with:    robustprune resume {outcome.experiment_path}")
    print(f"report:           robustprune report --tracking-uri {outcome.tracking_uri} --experiment "
          f"{outcome.experiment_name} --out study.html")
    print_ui_links(outcome)


def cmd_study(args) -> int:
    from ..driver.study.cells import plan
    from ..driver.study.config import load_study_config

    cfg = load_study_config(args.config, args.set or [])  # validated before Ray or MLflow is touched
    if args.dry_run:
        print_plan(plan(cfg, build=False), cfg)
        return 0
    from ..driver.study.runner import run_study

    outcome = run_study(cfg, address=args.address, verbose=args.verbose)
    print_outcome(outcome)
    return 0 if outcome.complete and not outcome.failed else 1


def add_study_parser(sub) -> None:
    p = sub.add_parser("study", help="run a study: the paper's grid of cells, answered with statistics")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: $RAY_ADDRESS or a local Ray")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the cells, the ones that cannot run and the baselines to train; start nothing")
    add_verbose_flag(p)
    p.set_defaults(func=cmd_study)


def add_verbose_flag(parser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="print Tune's status tables and the logs of Ray, Tune, MLflow and Optuna here "
                             "(by default they go to robustprune.log in the experiment folder)")
