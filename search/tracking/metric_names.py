"""Every metric name a search or a study logs to MLflow, with what it means: the metrics
reference of the docs is made from this list, and the end-to-end tests fail on a logged
name it does not cover, so the two cannot drift apart.

A name may hold placeholders: `<attack>` (an attack's name), `<runtime>` and `<batch>` (a
latency runtime and batch size), `<seeded>` (a metric summarized over seeds) and `<summary>`
(mean, std, ci_low, ci_high)."""
import re
from dataclasses import dataclass

from search.front.seeds import SEED_METRICS, SEEDS_METRIC, SUMMARY_PARTS

from .test_metrics import CURVE_METRIC, CURVE_STEP_SCALE

TRIAL, SEARCH, STUDY = "trial", "search", "study"  # child runs (trials, study cells), a search's parent, a study's
RUNS = {TRIAL: "trial and study cell runs", SEARCH: "a search's parent run", STUDY: "a study's parent run"}
PLACEHOLDERS = {"attack": r"[A-Za-z0-9]+", "runtime": r"[a-z]+", "batch": r"\d+",
                "seeded": "(?:" + "|".join(SEED_METRICS) + ")", "summary": "(?:" + "|".join(SUMMARY_PARTS) + ")"}


@dataclass(frozen=True)
class MetricName:
    name: str
    runs: tuple[str, ...]
    meaning: str

    def pattern(self) -> re.Pattern:
        parts = re.split(r"<(\w+)>", self.name)  # literal, placeholder, literal, ...
        return re.compile("".join(re.escape(p) if i % 2 == 0 else PLACEHOLDERS[p] for i, p in enumerate(parts)))


_T, _S, _ST = (TRIAL,), (SEARCH,), (STUDY,)
METRIC_NAMES = (
    # ---- a pruned model, on validation images (trials and study cells)
    MetricName("flops", _T, "FLOPs of one forward pass at batch 1 (torch.utils.flop_counter; a multiply-add "
                            "counts 2)."),
    MetricName("macs", _T, "Multiply-adds of one forward pass: flops / 2."),
    MetricName("params", _T, "Parameters of the pruned model."),
    MetricName("flops_reduction", _T, "1 - flops / flops_baseline."),
    MetricName("params_reduction", _T, "1 - params / params_baseline."),
    MetricName("blocks_removed", _T, "Residual blocks removed (layer pruning; 0 for filter pruning)."),
    MetricName("clean_acc", _T, "Accuracy on the whole validation split."),
    MetricName("robust_acc", _T, "Fraction of `data.eval_size` validation images that every attack of the "
                                 "search's suite fails on (the per-sample worst case)."),
    MetricName("robust_acc_<attack>", _T, "The same, for one attack of the suite alone."),
    MetricName("latency_ms", _T, "The first runtime and batch size's latency (below)."),
    MetricName("latency_ms_<runtime>_b<batch>", _T, "Median forward pass in milliseconds on that runtime at that "
                                                   "batch size, timed in turns with the baseline."),
    MetricName("latency_ratio_<runtime>_b<batch>", _T, "That latency over the baseline's, timed beside it."),
    MetricName("latency_ratio", _T, "The first runtime and batch size's ratio."),
    MetricName("trial_seconds", _T, "The trial's own compute time (pruning, fine-tuning, validation), in seconds."),
    MetricName("cell_seconds", _T, "A study cell's compute time: its trial and its test evaluation."),
    MetricName("rung_step", _T, "mo_asha: the round at which the trial was stopped, dominated at that rung."),
    MetricName("rung_clean_acc", _T, "mo_asha: its clean accuracy at that rung (on `search.rung_eval_size` "
                                     "validation images); a stopped trial logs no `clean_acc`."),
    MetricName("rung_robust_acc", _T, "mo_asha: its robust accuracy at that rung."),
    MetricName("iterations", _T, "Prune-and-fine-tune rounds the trial ran."),
    MetricName("finetune_epochs", _T, "Fine-tuning epochs per round."),
    MetricName("finetune_eps", _T, "Adversarial fine-tuning budget: the perturbation, in pixel units."),
    MetricName("finetune_alpha", _T, "Adversarial fine-tuning budget: the step size, in pixel units."),
    MetricName("finetune_steps", _T, "Adversarial fine-tuning budget: attack steps per batch."),
    MetricName("finetune_beta", _T, "TRADES' weight of the robustness term."),
    MetricName("guard_best_epoch", _T, "Catastrophic-overfitting guard: the epoch whose weights were kept."),
    MetricName("guard_pgd_acc", _T, "The guard's PGD accuracy at that epoch."),
    MetricName("guard_pgd_acc_drop", _T, "How far the guard's PGD accuracy fell after its best epoch."),
    MetricName("<metric>_baseline", _T + _S + _ST, "Any metric above measured on the unpruned baseline (latency: "
                                                   "timed beside the trial's model)."),
    # ---- the final test evaluation (front members, study cells)
    MetricName("test_clean_acc", _T, "Accuracy on the test split (`evaluation.test_size` images)."),
    MetricName("test_robust_acc", _T, "Per-sample worst case over `evaluation.final_attacks` at full strength "
                                      "on the test images."),
    MetricName("test_robust_acc_<attack>", _T, "The same, for one final attack alone."),
    MetricName("test_eval_seconds", _T, "Worker seconds the final test evaluation took, all its parts together."),
    MetricName(CURVE_METRIC, _T, "The robustness curve: test robust accuracy at each eps of `evaluation.eps_grid`, "
                                 f"logged at step eps × {CURVE_STEP_SCALE:,}."),
    # ---- over seeds (front models re-run with evaluation.seeds > 1)
    MetricName(SEEDS_METRIC, _T, "How many seeds the summaries below cover."),
    MetricName("<seeded>_<summary>", _T, "clean_acc, robust_acc, test_clean_acc or test_robust_acc over the "
                                         "seeds: mean, standard deviation and the 95% t-interval."),
    # ---- a search's parent run
    MetricName("hypervolume", _S, "Hypervolume of the feasible front (objectives normalized by the baseline), "
                                  "logged at each finished trial."),
    MetricName("finished_trials", _S, "Trials finished so far."),
    MetricName("pareto_size", _S, "Members of the front so far."),
    MetricName("driver_bookkeeping_ms", _S, "The driver's wall milliseconds spent logging one finished trial."),
    MetricName("driver_bookkeeping_cpu_ms", _S, "The same in CPU time of the driver's thread (hardly changed by "
                                               "other work on the machine)."),
    MetricName("driver_rss_mb", _S, "The driver's resident memory after logging that trial, in MB."),
    MetricName("proposals_answered_from_cache", _S, "Points the sampler proposed again, answered from the "
                                                   "search's cache instead of trained twice."),
    MetricName("warm_start_points", _S, "Points of the `search.warm_start` search that seeded the sampler."),
    MetricName("trial_compute_s", _S + _ST, "Seconds of compute the trials (or cells) spent, summed."),
    MetricName("test_eval_compute_s", _S + _ST, "Seconds of compute the final test evaluation (or the study's "
                                                "baselines) spent."),
    MetricName("tune_wall_s", _S + _ST, "Wall time of the Tune run."),
    MetricName("test_eval_wall_s", _S + _ST, "Wall time of the final test evaluation."),
    MetricName("search_wall_s", _S + _ST, "Wall time of the whole parent run."),
    MetricName("trial_slots", _S + _ST, "Trials that ran at once (`search.max_concurrent`, capped by the cluster)."),
    MetricName("efficiency", _S + _ST, "Useful compute / (slots × wall time)."),
    MetricName("trial_efficiency", _S + _ST, "The same, counting the trials' compute alone."),
    # ---- a study's parent run
    MetricName("cells_finished", _ST, "Grid points (setup × granularity × criterion × ratio × iterations × "
                                      "fine-tuning, each over its seeds) with a finished run."),
    MetricName("cells_more_robust", _ST, "Grid points whose test robust accuracy is significantly above their "
                                         "baseline's: paired t-test over the seeds, Holm-adjusted p < 0.05."),
    MetricName("cells_less_robust", _ST, "Grid points significantly below their baseline by the same test."),
)
_BASELINE = "<metric>_baseline"


def documented(name: str, run: str) -> bool:
    """Whether the list covers `name` logged on a run of this kind."""
    for entry in METRIC_NAMES:
        if run not in entry.runs:
            continue
        if entry.name == _BASELINE:  # the baseline's twin of any metric a trial logs
            if name.endswith("_baseline") and documented(name.removesuffix("_baseline"), TRIAL):
                return True
        elif entry.pattern().fullmatch(name):
            return True
    return False


def metrics_reference() -> str:
    """The docs' tables: one per kind of run."""
    sections = []
    for run, title in RUNS.items():
        rows = [f"| `{e.name}` | {e.meaning} |" for e in METRIC_NAMES if run in e.runs]
        sections.append(f"### {title.capitalize()}\n\n| metric | meaning |\n|---|---|\n" + "\n".join(rows))
    return "\n\n".join(sections)
