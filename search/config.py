"""Search configuration: YAML in, validated object out (before any Ray or MLflow resource).

    robustprune run configs/quickstart.yaml --set search.num_samples=4 --set experiment.name=smoke

Every error is one line that names the field (dotted path) and the allowed values.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from trainables.config import (AttackConfig, LatencyConfig, Strict, TrainConfig, TrialConfig,
                               format_validation_error, open_unit_interval, weights_are_the_baseline)
from trainables.attacks import ATTACKS
from trainables.data import DATASETS
from trainables.methods import METHODS
from trainables.models import check_model_name
from trainables.models.python_factory import carried_code
from trainables.transforms_config import TransformsConfig
from trainables.prune import CRITERIA
from trainables.registry import one_of


ACCURACY_METRICS = ("robust_acc", "clean_acc")  # objectives to maximize; every other one is a cost
COST_OBJECTIVES = ("flops", "macs", "params", "latency_ms")  # and latency_ms_<runtime>_b<batch> of `latency`
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
OPTUNA_IN_MEMORY = "memory"  # search.optuna_storage: keep the study in the driver's memory


class ConfigError(ValueError):
    """A config problem, already formatted as one line naming the field."""


class ExperimentConfig(Strict):
    name: str = Field("robustprune", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="the MLflow experiment; a search is named NAME_<date>-<time> inside it")
    seed: int = Field(0, description="the search's seed: data splits, evaluation subsets, baseline training, sampler")
    tracking_uri: str | None = Field(None, description="MLflow store (sqlite:///FILE, http://HOST:PORT, ...); "
                                                       "default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    storage_path: str = Field("robustprune_runs", description="where Tune keeps each search's folder and the "
                                                             "baseline cache: a local folder, an NFS mount, "
                                                             "or an s3:// / gs:// URI")
    device: str = Field("auto", description="auto (CUDA when the trial has a GPU, else CPU), cpu, cuda, cuda:N")
    amp: bool = Field(False, description="mixed precision for training and fine-tuning on CUDA")

    def resolved_tracking_uri(self) -> str:
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
        return uri

    def resolved_storage_path(self) -> str:
        if "://" in self.storage_path:
            return self.storage_path
        return str(Path(self.storage_path).expanduser().resolve())

    def default_optuna_storage(self) -> str | None:
        """optuna.db beside an sqlite MLflow store, else in a local storage path; None (the
        study in memory) when both are remote."""
        uri = self.resolved_tracking_uri()
        if uri.startswith("sqlite:///"):
            return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
        storage = self.resolved_storage_path()
        return None if "://" in storage else f"sqlite:///{Path(storage) / 'optuna.db'}"


class DataConfig(Strict):
    name: str = Field("mnist5k", description="mnist5k, digits, cifar10, cifar100, synthetic (in memory), or "
                                           "imagefolder, hf, webdataset (streamed)")
    data_dir: str | None = Field(None, description="the data's folder (cifar, imagefolder), saved Hugging Face "
                                                   "dataset or hub name (hf), training shards (webdataset)")
    download: bool = Field(False, description="cifar10/100: download into data_dir if missing (the one network "
                                              "access, on request)")
    val_size: int | None = Field(None, ge=1, description="validation images held out of training; default 10%")
    eval_size: int = Field(500, ge=1, description="validation images the attacks run on during the search")
    calib_size: int = Field(256, ge=2, description="training images the data-driven criteria score channels on")
    image_size: int | None = Field(None, ge=8, description="streamed datasets (imagefolder): crop side, default 224")
    workers: int = Field(0, ge=0, description="streamed datasets: DataLoader processes decoding images")
    mean: list[float] | None = Field(None, description="normalization inside the model; default: the data's")
    std: list[float] | None = Field(None, description="normalization inside the model (with mean); default: "
                                                      "the data's")
    image_column: str = Field("image", description="hf datasets: the column holding the images")
    label_column: str = Field("label", description="hf datasets: the column holding the class labels")
    test_shards: str | None = Field(None, description="webdataset: the test shards (path or URL, {000..099} ranges)")
    transforms: TransformsConfig = Field(TransformsConfig(), description="a preset (imagenet, cifar, none), timm, "
                                         "a mapping {train, eval, crop_fraction, interpolation, flip, "
                                         "random_crop_padding, scale}, or python:MODULE:FN")

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        return one_of(v, DATASETS, "dataset")


class ModelConfig(Strict):
    code: str | None = Field(None, description="set by the driver: a python: file model's code, for the workers")
    name: str = Field("lenet", description="a built-in name, torchvision:NAME, timm:NAME or python:MODULE:CALLABLE")
    weights: str | None = Field(None, description="state_dict / checkpoint / .safetensors file: the baseline")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the model's builder")

    @field_validator("name")
    @classmethod
    def _known(cls, v, info):
        carried_code(v, info.data.get("code"))
        return check_model_name(v)

    @model_validator(mode="after")
    def _carry_code(self):
        object.__setattr__(self, "code", carried_code(self.name, self.code))
        return self


class Range(Strict):
    """Inclusive [low, high]; low == high fixes the value."""
    low: float = Field(description="the smallest value sampled")
    high: float = Field(description="the largest value sampled (low == high fixes the value)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"empty range: low {self.low} > high {self.high}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        """For editors, the forms `SpaceConfig._range_shorthands` reads: a number (the value
        fixed), [low, high], or a mapping of either bound (the other from the default)."""
        mapping = handler(core_schema)
        handler.resolve_ref_schema(mapping).pop("required", None)
        number = {"type": "integer" if cls.model_fields["low"].annotation is int else "number"}
        return {"anyOf": [number, {"type": "array", "items": number, "minItems": 2, "maxItems": 2}, mapping]}


class IntRange(Range):
    low: int = Field(description="the smallest value sampled")
    high: int = Field(description="the largest value sampled (low == high fixes the value)")


class SpaceConfig(Strict):
    granularities: list[Literal["filter", "layer"]] = Field(
        default_factory=lambda: ["filter"], min_length=1, description="prune filters (channels) or whole "
                                                                      "residual blocks (layers)")
    criteria: list[str] = Field(default_factory=lambda: ["l1"], min_length=1,
                                description="the criteria searched, e.g. l1, pls_vip, hrank "
                                            "(docs/explanation/criteria.md)")
    ratio: Range = Field(Range(low=0.2, high=0.8), description="fraction of filters (or blocks) removed: a "
                                                               "number, [low, high] or {low, high}, in (0, 1)")
    ratio_step: float = Field(0.01, gt=0, lt=1, description="ratios are sampled on this grid, so that a point "
                                                           "proposed twice is recognised and measured once")
    iterations: IntRange = Field(IntRange(low=1, high=3), description="prune-and-fine-tune rounds that reach "
                                                                     "the ratio: a number, [low, high] or "
                                                                     "{low, high}, at least 1")
    finetune_epochs: IntRange = Field(IntRange(low=1, high=1), description="fine-tuning epochs after pruning: a "
                                                                          "number, [low, high] or {low, high}")
    finetune: TrainConfig = Field(TrainConfig(epochs=1, lr=0.01), description="the fine-tuning loop (lr, "
                                                                            "batch size, ...); its epochs and "
                                                                            "method come from the space")
    finetune_method: list[str] = Field(default_factory=lambda: ["natural"], min_length=1,
                                       description="fine-tuning methods to search: natural, pgd_at, trades, fgsm_rs")
    finetune_budget: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per method, its budget over the published defaults, "
                                          "e.g. {trades: {beta: 3}}")
    global_pruning: bool = Field(False, description="rank filters across all layers at once instead of the "
                                                    "same ratio in every layer")
    round_to: int | None = Field(None, ge=1, description="filter pruning: channel counts in multiples of it "
                                                          "(8 suits GPU kernels)")
    criterion_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per criterion, e.g. {pls_vip: {pooling: mean}}")

    @model_validator(mode="before")
    @classmethod
    def _range_shorthands(cls, data):
        """A range may be a number (fixed), [low, high], or a partial mapping over the default."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("ratio", "iterations", "finetune_epochs"):
            value = data.get(name)
            default = cls.model_fields[name].default.model_dump()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                data[name] = {"low": value, "high": value}
            elif isinstance(value, list) and len(value) == 2:
                data[name] = {"low": value[0], "high": value[1]}
            elif isinstance(value, dict):
                data[name] = {**default, **value}
        return data

    @field_validator("ratio")
    @classmethod
    def _ratio_inside_unit(cls, v):
        open_unit_interval(v.low)
        open_unit_interval(v.high)
        return v

    @field_validator("iterations", "finetune_epochs")
    @classmethod
    def _low_bound(cls, v, info):
        minimum = {"iterations": 1, "finetune_epochs": 0}[info.field_name]
        if v.low < minimum:
            raise ValueError(f"got low {v.low}; allowed: >= {minimum}")
        return v

    @field_validator("finetune_method")
    @classmethod
    def _methods_known(cls, v):
        return [one_of(m, METHODS, "method") for m in v]

    @field_validator("finetune")
    @classmethod
    def _method_set_by_the_space(cls, v):
        if v.method != "natural" or v.method_budget():
            raise ValueError("the method and its budget are searched; set space.finetune_method and "
                             "space.finetune_budget instead")
        return v

    def finetune_of(self, method: str, epochs: int | None = None) -> TrainConfig:
        """Fine-tuning settings with `method` and its budget (validated)."""
        return TrainConfig(**{**self.finetune.model_dump(exclude_unset=True), "method": method,
                              **self.finetune_budget.get(method, {}),
                              **({} if epochs is None else {"epochs": epochs})})

    @field_validator("criteria")
    @classmethod
    def _criteria_known(cls, v):
        known = set().union(*CRITERIA.values())
        return [one_of(c, known, "criterion") for c in v]

    def criteria_for(self, granularity: str) -> list[str]:
        return [c for c in self.criteria if c in CRITERIA[granularity]]

    def corner(self, granularity: str) -> dict[str, Any]:
        """The space's lowest point for a granularity (its first fitting criterion)."""
        return {"granularity": granularity, "criterion": self.criteria_for(granularity)[0],
                "ratio": self.ratio.low, "iterations": self.iterations.low,
                "finetune_epochs": self.finetune_epochs.low, "finetune_method": self.finetune_method[0]}


def sampled_point(config: dict) -> dict:
    """The trial-relevant values of a Tune config produced by SearchSpace (search/space.py).
    The ratio is rounded: Optuna's step grid leaves float noise (0.82 as 0.8200000000000001,
    or just below a step, which a floor of ratio x channels would turn into one filter less)."""
    point = {k: config[k] for k in ("granularity", "criterion", "ratio", "iterations", "finetune_epochs",
                                    "finetune_method")}
    return {**point, "ratio": round(float(point["ratio"]), 10)}


class SearchSettings(Strict):
    num_samples: int = Field(16, ge=1, description="trials of the search")
    max_concurrent: int = Field(2, ge=1, description="trials running at once (fewer when the cluster fits fewer)")
    sampler: Literal["gp", "random", "tpe", "nsga2"] = Field(
        "gp", description="the default: it beat random search from about 32 trials in make bench-search "
                    "(docs/explanation/search-methods.md)")
    population_size: int | None = Field(None, ge=2, description="NSGA-II; default from num_samples")
    objectives: dict[str, Literal["min", "max"]] = Field(
        default_factory=lambda: {"flops": "min", "robust_acc": "max"},
        description="one accuracy (robust_acc or clean_acc: max) and one or two costs (flops, macs, params, "
                    "latency_ms or latency_ms_<runtime>_b<batch>: min)")
    max_clean_acc_drop: float | None = Field(None, ge=0, le=1,
                                             description="trials losing more clean accuracy are infeasible")
    dry_run: bool = Field(False, description="no-op trials with made-up metrics, to soak and time the driver "
                                             "(search/dry_run.py)")
    scheduler: Literal["fifo", "mo_asha"] = Field(
        "fifo", description="fifo: every trial runs to its end; mo_asha: stop trials that are dominated at a "
                            "rung (search/mo_asha.py)")
    grace: int = Field(1, ge=1, description="mo_asha: fine-tune epochs before a trial's first rung")
    reduction_factor: float = Field(3.0, gt=1, description="mo_asha: the best 1/reduction_factor go on at a rung")
    rung_eval_size: int = Field(100, ge=1, description="mo_asha: validation images behind an intermediate result")
    time_budget_s: float | None = Field(None, gt=0, description="start no trial after this many seconds, stop "
                                                                "the running ones; the front is then final")
    optuna_storage: str | None = Field(None, description="Optuna RDB storage URL of the search's study (for "
                                                         "optuna-dashboard), or 'memory'; default: sqlite optuna.db "
                                                         "beside an sqlite MLflow store, else in the storage path")
    warm_start: str | None = Field(None, min_length=1, description="an earlier search's experiment name (same "
                                                                   "model, data, objectives): its measured points "
                                                                   "seed the sampler")

    @field_validator("objectives")
    @classmethod
    def _an_accuracy_and_costs(cls, v):
        accuracies = [k for k in v if k in ACCURACY_METRICS]
        if len(accuracies) != 1 or len(v) not in (2, 3):
            raise ValueError(f"got {len(v)} objectives ({', '.join(v) or 'none'}); allowed: one accuracy "
                             f"({' or '.join(ACCURACY_METRICS)}) and one or two costs")
        return v


MAX_SEEDS = 20
REPLICA_SEED_STEP = 1000  # replica j of a search seeded s runs with trial seed s + 1000 j


class EvaluationConfig(Strict):
    """The final evaluation of the front on the test split (never used for selection)."""
    test_size: int | None = Field(None, ge=1, description="test images; default: the whole test split")
    final_attacks: list[AttackConfig] | None = Field(None, min_length=1,
                                                     description="default: the search's attacks at full strength")
    eps_grid: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, description="robustness curve (pixel units); default: 0, .5, 1, 1.5, 2 x eps")
    seeds: int = Field(1, description="trial seeds per front model: 1 = the trial alone; k > 1 re-runs each front "
                                   "point with k - 1 more seeds, reports mean and interval, decides the front on "
                                   "the means")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SEEDS:
            raise ValueError(f"got {v!r}; allowed: an integer from 1 to {MAX_SEEDS}")
        return v

    def replica_seeds(self, seed: int) -> list[int]:
        """The trial seeds of a front model's replicas (the trial itself ran with `seed`)."""
        return [seed + REPLICA_SEED_STEP * j for j in range(1, self.seeds)]


EPS_GRID_MULTIPLES = (0.0, 0.5, 1.0, 1.5, 2.0)


def default_attacks() -> list[AttackConfig]:
    """The attacks of a search or study that names none: FGSM and PGD at the dataset's eps."""
    return [AttackConfig(name="fgsm"), AttackConfig(name="pgd")]


class ResourcesConfig(Strict):
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs Ray reserves for each trial")
    gpus_per_trial: float = Field(0.0, ge=0, description="fractions share a GPU, e.g. 0.25")
    wait_timeout_s: float = Field(600.0, gt=0, description="on a cluster: how long to wait for one trial's "
                                                           "resources to appear (autoscaling) before failing")


class FailuresConfig(Strict):
    max_retries: int = Field(1, ge=0, description="reruns of a trial whose worker died, each in a fresh worker; "
                                                  "0: none, and workers are reused between trials")


class SearchConfig(Strict):
    experiment: ExperimentConfig = Field(ExperimentConfig(), description="names, seed, where results are kept")
    data: DataConfig = Field(DataConfig(), description="the dataset, its splits and preprocessing")
    model: ModelConfig = Field(ModelConfig(), description="the network to prune and its weights")
    baseline: TrainConfig = Field(TrainConfig(), description="training of the unpruned network when no weights "
                                                             "are given (cached per setting)")
    space: SpaceConfig = Field(SpaceConfig(), description="what the search samples: criteria, granularity, "
                                                          "ratio, iterations, fine-tuning")
    attacks: list[AttackConfig] = Field(default_factory=default_attacks, min_length=1,
                                        description="the selection suite: attacks every trial is measured with "
                                                    "on the validation subset (robust accuracy: the per-sample "
                                                    "worst case)")
    evaluation: EvaluationConfig = Field(EvaluationConfig(), description="the front's final test evaluation")
    search: SearchSettings = Field(SearchSettings(), description="trials, sampler, scheduler, objectives")
    latency: LatencyConfig = Field(LatencyConfig(), description="how trials time the pruned model")
    resources: ResourcesConfig = Field(ResourcesConfig(), description="what each trial reserves on the cluster")
    failures: FailuresConfig = Field(FailuresConfig(), description="what happens when a trial's worker dies")

    @model_validator(mode="before")
    @classmethod
    def _weights_are_the_baseline(cls, data):
        model = data.get("model") if isinstance(data, dict) else None
        return weights_are_the_baseline(data, model.get("weights") if isinstance(model, dict) else None)

    @model_validator(mode="after")
    def _latency_device_is_given(self):
        if self.latency.device.startswith("cuda") and self.resources.gpus_per_trial == 0:
            raise ValueError(f"latency.device: '{self.latency.device}' needs a GPU in every trial; allowed with "
                             f"resources.gpus_per_trial 0: auto, cpu")
        return self

    @model_validator(mode="after")
    def _objectives_are_measured(self):
        measured = [*COST_OBJECTIVES, *self.latency.settings().keys()]
        for metric in self.search.objectives:
            if metric not in ACCURACY_METRICS and metric not in measured:
                raise ValueError(f"search.objectives: '{metric}' is not measured by the trials; allowed costs: "
                                 f"{', '.join(measured)} (latency_ms_<runtime>_b<batch> for latency.runtimes x "
                                 f"latency.batch_sizes)")
        return self

    @model_validator(mode="after")
    def _space_fits_model(self):
        for g in self.space.granularities:
            if not self.space.criteria_for(g):
                raise ValueError(f"space.criteria: none fits granularity '{g}'; allowed for {g}: "
                                 f"{', '.join(sorted(CRITERIA[g]))}")
        unused = [c for c in self.space.criteria
                  if not any(c in CRITERIA[g] for g in self.space.granularities)]
        if unused:
            raise ValueError(f"space.criteria: '{unused[0]}' fits none of the granularities "
                             f"{self.space.granularities}")
        stray = [c for c in self.space.criterion_params if c not in self.space.criteria]
        if stray:
            raise ValueError(f"space.criterion_params: '{stray[0]}' is not in space.criteria; allowed: "
                             f"{', '.join(self.space.criteria)}")
        for method in self.space.finetune_budget:
            if method not in self.space.finetune_method:
                raise ValueError(f"space.finetune_budget: '{method}' is not in space.finetune_method; allowed: "
                                 f"{', '.join(self.space.finetune_method)}")
            try:
                self.space.finetune_of(method)
            except ValidationError as e:
                raise ValueError(f"space.finetune_budget.{method}.{format_validation_error(e)}") from None
        # one trial config per corner of the space catches model/granularity/data problems now,
        # and one per criterion with parameters checks them for every granularity it prunes
        for g in self.space.granularities:
            self.trial_config(self.space.corner(g))
            for c in self.space.criterion_params:
                if c in CRITERIA[g]:
                    self.trial_config({**self.space.corner(g), "criterion": c})
        return self

    def final_attacks(self) -> list[AttackConfig]:
        return self.evaluation.final_attacks or [a.at_full_strength() for a in self.attacks]

    def eps_grid(self) -> list[float]:
        """The robustness curve's eps values: as configured, else multiples of the final
        suite's first L-inf eps (none when the suite has no L-inf attack)."""
        if self.evaluation.eps_grid is not None:
            return self.evaluation.eps_grid
        default = DATASETS[self.data.name].default_eps
        linf = [a.spec(default).eps for a in self.final_attacks() if ATTACKS[a.name].norm == "linf"]
        return [round(m * linf[0], 6) for m in EPS_GRID_MULTIPLES] if linf else []

    def resolved_training_methods(self) -> dict[str, dict]:
        """The baseline's method and every searched fine-tuning method, with its budget resolved."""
        eps = DATASETS[self.data.name].default_eps
        finetune = {m: self.space.finetune_of(m).settings(False, eps).method.record()
                    for m in self.space.finetune_method}
        return {"baseline": self.baseline.settings(False, eps).method.record(),
                "finetune": {m: {k: v for k, v in r.items() if k != "method"} for m, r in finetune.items()}}

    def resolved_criterion_params(self) -> dict[str, dict]:
        """Each searched criterion that takes parameters, with its defaults filled in."""
        resolved = {}
        for g in self.space.granularities:
            for c in self.space.criteria_for(g):
                params = CRITERIA[g][c].resolve(self.space.criterion_params.get(c, {}))
                if params:
                    resolved[c] = params
        return resolved

    def resolved_optuna_storage(self) -> str | None:
        """The study's storage URL, or None to keep it in memory."""
        url = self.search.optuna_storage or self.experiment.default_optuna_storage()
        return None if url == OPTUNA_IN_MEMORY else url

    def trial_device_type(self) -> str:
        """Where trials (and the baseline) run: a GPU only when trials are given one."""
        if self.experiment.device == "auto":
            return "cuda" if self.resources.gpus_per_trial > 0 else "cpu"
        return self.experiment.device.split(":")[0]

    def fixed_trial_config(self) -> TrialConfig:
        """A trial config for what every trial shares (data, model, baseline, attacks, final
        evaluation): the baseline and the final evaluation use it; its pruning fields don't matter."""
        return self.trial_config(self.space.corner(self.space.granularities[0]))

    def trial_config(self, sampled: dict[str, Any], trial_seed: int | None = None) -> TrialConfig:
        """The full trial config for one point of the search space (a replica's: with its trial seed)."""
        finetune = self.space.finetune_of(sampled["finetune_method"], sampled["finetune_epochs"])
        try:
            return TrialConfig(
                dataset=self.data.name, data_dir=self.data.data_dir, download=self.data.download,
                val_size=self.data.val_size, eval_size=self.data.eval_size, calib_size=self.data.calib_size,
                image_size=self.data.image_size, data_workers=self.data.workers, data_mean=self.data.mean,
                data_std=self.data.std, image_column=self.data.image_column,
                label_column=self.data.label_column, test_shards=self.data.test_shards,
                transforms=self.data.transforms, model=self.model.name, model_weights=self.model.weights,
                model_args=self.model.args, model_code=self.model.code, seed=self.experiment.seed,
                trial_seed=trial_seed,
                device=self.experiment.device, amp=self.experiment.amp, baseline=self.baseline,
                granularity=sampled["granularity"],
                criterion=sampled["criterion"], ratio=sampled["ratio"], iterations=sampled["iterations"],
                global_pruning=self.space.global_pruning, round_to=self.space.round_to,
                criterion_params=self.space.criterion_params.get(sampled["criterion"], {}), finetune=finetune,
                attacks=self.attacks, latency=self.latency,
                test_size=self.evaluation.test_size, final_attacks=self.final_attacks(), eps_grid=self.eps_grid())
        except ValidationError as e:
            line = format_validation_error(e)
            field = line.split(":")[0]
            where = {"granularity": "space.granularities", "criterion": "space.criteria",
                     "dataset": "data.name", "data_dir": "data.data_dir", "model": "model.name",
                     "model_weights": "model.weights", "model_args": "model.args", "image_size": "data.image_size",
                     "data_mean": "data.mean", "data_std": "data.std", "image_column": "data.image_column",
                     "label_column": "data.label_column", "test_shards": "data.test_shards",
                     "device": "experiment.device", "val_size": "data.val_size"}
            if field.startswith("transforms"):
                where[field] = f"data.{field}"
            if field.startswith("criterion_params"):
                where[field] = f"space.criterion_params.{sampled['criterion']}{field[len('criterion_params'):]}"
            raise ValueError(f"{where.get(field, field)}{line[len(field):]}") from None


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: '{k}' is not a section")
        node = child
    node[keys[-1]] = value


class _StrictYamlLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (not last-wins)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"key '{key}' appears twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML (safe, duplicate keys refused); ConfigError '<where>: <what, line>' on bad syntax."""
    try:
        return yaml.load(text, Loader=_StrictYamlLoader)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error{at}: {problem}") from None


def parse_overrides(overrides: list[str], flag: str = "--set") -> list[tuple[str, Any]]:
    """'a.b=value' pairs; values are YAML (numbers, booleans, lists) so types survive."""
    pairs = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag}: expected KEY=VALUE, got '{item}'")
        value = parse_yaml(raw, f"{flag} {key.strip()}") if raw.strip() else None
        pairs.append((key.strip(), value))
    return pairs


def read_yaml_mapping(path: str | os.PathLike) -> dict:
    """A YAML file's top-level mapping; ConfigError (one line) if missing, a folder, not UTF-8
    text, bad YAML, a key given twice, not a mapping, or empty (a truncated or wrongly named
    file is the usual cause; a run on every default is one key away)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config: {path} is a folder; give the YAML file")
    if not p.is_file():
        raise ConfigError(f"config: file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path} is not UTF-8 text (a YAML file is expected)") from None
    data = parse_yaml(text, f"config: {path}")
    if data is None or data == {}:
        raise ConfigError(f"config: {path} is empty (no keys); set at least one, e.g. experiment.name")
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of keys to values")
    return data


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> SearchConfig:
    """Read YAML, apply --set overrides, validate. Raises ConfigError with one line."""
    raw = read_yaml_mapping(path) if path is not None else {}
    if "study" in raw:
        raise ConfigError(f"config: {path} is a study config (it has a 'study' section); run it with "
                          f"`robustprune study`")
    return validated(SearchConfig, raw, overrides)


def validated(model, raw: dict, overrides: list[str] = ()):
    """`raw` with the --set overrides applied, validated as `model`; ConfigError with one line."""
    for key, value in parse_overrides(list(overrides)):
        set_dotted(raw, key, value)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None
