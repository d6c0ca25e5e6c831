"""Typed, validated configuration of one trial (pydantic v2).

Every check that can fail before work starts lives here, and every message names the
field and the allowed values, so the CLI can print it as one line and exit 2.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from .attacks import ATTACKS, AttackSpec, full_strength
from .data import DATASETS, check_val_size
from .models import BUILTIN_MODELS, BUILTIN_WITH_REMOVABLE_BLOCKS, check_model_name
from .models.python_factory import carried_code
from .prune import CRITERIA, PruneSettings
from .registry import Strict, one_of
from .latency import RUNTIMES, LatencySettings
from .methods import BUDGET_FIELDS, METHODS, resolve_method
from .train import TrainSettings
from .data.transforms import ResolvedTransforms
from .transforms_config import TransformsConfig


def open_unit_interval(v: float) -> float:
    if not 0 < v < 1:
        raise ValueError(f"got {v}; allowed: 0 < value < 1")
    return v


class TrainConfig(Strict):
    epochs: int = Field(5, ge=0, description="passes over the training split")
    lr: float = Field(0.05, gt=0, description="SGD's initial learning rate")
    batch_size: int = Field(128, ge=1, description="images per SGD step")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(5e-4, ge=0, description="L2 penalty of SGD")
    schedule: Literal["cosine", "step"] = Field("cosine", description="learning-rate schedule over the epochs")
    method: str = Field("natural", description="natural, or adversarial training: pgd_at, trades, fgsm_rs")
    eps: float | None = Field(None, ge=0, le=1, description="the method's L-inf budget, pixel units; "
                                                            "default: the dataset's usual eps")
    alpha: float | None = Field(None, gt=0, description="step size; default: the method's published rule")
    steps: int | None = Field(None, ge=1, description="pgd_at, trades: attack steps per batch; default: the "
                                                      "method's published number")
    beta: float | None = Field(None, gt=0, description="trades: weight of the robustness (KL) term; default 6")

    @field_validator("method")
    @classmethod
    def _known_method(cls, v):
        return one_of(v, METHODS, "method")

    @model_validator(mode="after")
    def _budget_fits_method(self):
        uses = METHODS[self.method].budget
        for name in BUDGET_FIELDS:
            if getattr(self, name) is not None and name not in uses:
                allowed = f"it uses {', '.join(uses)}" if uses else "it makes no adversarial examples"
                raise ValueError(f"{name}: not a setting of method {self.method}; {allowed}")
        return self

    def method_budget(self) -> dict:
        return {k: getattr(self, k) for k in BUDGET_FIELDS if getattr(self, k) is not None}

    def settings(self, amp: bool, default_eps: float) -> TrainSettings:
        loop = self.model_dump(exclude={"method", *BUDGET_FIELDS})
        return TrainSettings(amp=amp, method=resolve_method(self.method, self.method_budget(), default_eps), **loop)


class AttackConfig(Strict):
    """One attack as configured; `spec()` resolves it (default eps, every parameter)."""
    name: str = Field(description="fgsm, pgd, bim, cw, deepfool, autoattack, apgd, square, occlusion, spatial "
                                  "(docs/explanation/evaluation-protocol.md)")
    eps: float | None = Field(None, ge=0, description="pixel units; default: the dataset's usual eps (L-inf)")
    alpha: float | None = Field(None, gt=0, description="step size of iterative attacks, pixel units; default: "
                                                        "the attack's rule from eps and steps")
    steps: int | None = Field(None, ge=1, description="default: the attack's strong default")
    params: dict[str, Any] = Field(default_factory=dict, description="the attack's other torchattacks "
                                                                    "arguments, e.g. {restarts: 2}")

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        return one_of(v, ATTACKS, "attack")

    @model_validator(mode="after")
    def _params_fit(self):
        info = ATTACKS[self.name]
        if self.eps is not None and not info.uses_eps:
            raise ValueError(f"eps: {self.name} has no eps budget; set its params "
                             f"({', '.join(info.params.model_fields)}) instead")
        if self.eps is not None and info.norm == "linf" and self.eps > 1:
            raise ValueError(f"eps: got {self.eps}; allowed: 0..1 for {self.name} (pixel units, images in [0, 1])")
        self.resolved_params()
        return self

    def resolved_params(self) -> dict:
        """Every parameter of the attack: the attack's defaults, then what was set here."""
        info = ATTACKS[self.name]
        top = {k: v for k, v in (("steps", self.steps), ("alpha", self.alpha)) if v is not None}
        try:
            return info.params.model_validate({**self.params, **top}).model_dump()
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            field = key if key in top else f"params.{key}"
            if err["type"] == "extra_forbidden":
                raise ValueError(f"{field}: unknown for {self.name}; allowed: "
                                 f"{', '.join(info.params.model_fields) or 'none'}") from None
            raise ValueError(f"{field}{format_validation_error(e)[len(key):]}") from None

    def spec(self, default_eps: float) -> AttackSpec:
        """Resolved: L-inf attacks without an eps get the dataset's default."""
        norm = ATTACKS[self.name].norm
        eps = default_eps if self.eps is None and norm == "linf" else self.eps
        return AttackSpec(self.name, eps, self.resolved_params())

    def at_full_strength(self) -> "AttackConfig":
        """Same attack and budget, every effort knob (steps, restarts, stride ...) at least its strong default."""
        return AttackConfig(name=self.name, eps=self.eps, params=full_strength(self.name, self.resolved_params()))


def weights_are_the_baseline(data, weights: str | None):
    """Given weights are the baseline: measured, not trained, unless baseline.epochs is set.
    Resolved in the raw config, so the epochs are explicit in every copy of it sent on."""
    if not isinstance(data, dict) or not weights:
        return data
    baseline = data.get("baseline")
    given = baseline.model_fields_set if isinstance(baseline, TrainConfig) else set(baseline or {})
    if "epochs" in given:
        return data
    fields = baseline.model_dump(exclude_unset=True) if isinstance(baseline, TrainConfig) else dict(baseline or {})
    return {**data, "baseline": {**fields, "epochs": 0}}


def known_device(v: str) -> str:
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise ValueError(f"unknown device '{v}'; allowed: auto, cpu, cuda, cuda:N")


Device = Annotated[str, AfterValidator(known_device)]


class LatencyConfig(Strict):
    """How trials time the model: on which runtimes, batch sizes and CPU threads (see
    trainables/latency.py). Every runtime x batch size is logged as latency_ms_<runtime>_b<batch>."""
    runtimes: list[str] = Field(default_factory=lambda: ["torch"], min_length=1,
                                description="torch (eager), torchscript, onnxruntime (CPU)")
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1], min_length=1,
                                                           description="images per timed call")
    threads: int | None = Field(None, ge=1, description="CPU threads while timing; default: the trial's CPUs")
    repeats: int = Field(30, ge=1, description="timed rounds (median); each model is called once per round")
    warmup: int = Field(5, ge=0, description="untimed calls before the timed rounds")
    device: Device = Field("auto", description="where torch and torchscript are timed: auto (the trial's device), "
                                            "cpu, cuda, cuda:N; onnxruntime times on CPU")

    @field_validator("runtimes")
    @classmethod
    def _known_runtimes(cls, v):
        for runtime in v:
            one_of(runtime, RUNTIMES, "runtime")
        if len(set(v)) != len(v):
            raise ValueError("a runtime is listed twice")
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _distinct_batch_sizes(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("a batch size is listed twice")
        return v

    def settings(self) -> LatencySettings:
        return LatencySettings(tuple(self.runtimes), tuple(self.batch_sizes), self.threads, self.repeats, self.warmup)


class TrialConfig(Strict):
    # data
    dataset: str = Field("mnist5k", description="mnist5k, digits, cifar10, cifar100, synthetic, imagefolder, "
                                              "hf or webdataset")
    data_dir: str | None = Field(None, description="the data's folder, saved dataset or training shards")
    download: bool = Field(False, description="cifar10/100: download into data_dir if missing")
    val_size: int | None = Field(None, ge=1, description="validation images held out of training; default 10%")
    eval_size: int = Field(500, ge=1, description="seeded validation subset the attacks run on")
    calib_size: int = Field(256, ge=2, description="calibration batch for activation criteria")
    image_size: int | None = Field(None, ge=8, description="streamed datasets: the side images are cropped to")
    data_workers: int = Field(0, ge=0, description="streamed datasets: DataLoader processes decoding images")
    data_mean: list[float] | None = Field(None, description="normalization inside the model; default: the data's")
    data_std: list[Annotated[float, Field(gt=0)]] | None = Field(None, description="normalization inside the "
                                                                                 "model; default: the data's")
    image_column: str = Field("image", description="hf datasets: the column holding the images")
    label_column: str = Field("label", description="hf datasets: the column holding the class labels")
    test_shards: str | None = Field(None, description="webdataset: the test shards (path or URL, {000..099} ranges)")
    transforms: TransformsConfig = Field(TransformsConfig(), description="a preset (imagenet, cifar, none), timm, "
                                         "a mapping of presets and knobs, or python:MODULE:FN")
    # model and its training
    model: str = Field("lenet", description="a built-in name, torchvision:NAME, timm:NAME or "
                                          "python:MODULE:CALLABLE")
    model_weights: str | None = Field(None, description="a state_dict, checkpoint or .safetensors file: the baseline")
    model_args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the model's builder")
    model_code: str | None = Field(None, description="set by the driver: a python: file model's code, for workers")
    seed: int = Field(0, description="data splits and subsets, baseline training, and (without trial_seed) the "
                                     "rest")
    trial_seed: int | None = Field(None, description="a replica's seed: the fine-tuning's data order and "
                                                     "augmentation, the calibration sample, the attacks' random "
                                                     "starts; default: seed (the splits and subsets follow seed)")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N")
    amp: bool = Field(False, description="mixed precision on CUDA")
    baseline: TrainConfig = Field(TrainConfig(), description="training of the unpruned network when no "
                                                             "weights are given")
    # pruning
    granularity: Literal["filter", "layer"] = Field("filter", description="prune filters or residual blocks")
    criterion: str = Field("l1", description="the pruning criterion (docs/explanation/criteria.md)")
    ratio: float = Field(0.5, description="fraction of filters (or blocks) removed, in (0, 1)")
    iterations: int = Field(1, ge=1, description="prune-and-fine-tune rounds that reach the ratio")
    global_pruning: bool = Field(False, description="rank filters across all layers at once")
    round_to: int | None = Field(None, ge=1, description="filter pruning keeps channel counts in multiples of it")
    criterion_params: dict[str, Any] = Field(default_factory=dict, description="e.g. pls_vip: {pooling: mean}")
    finetune: TrainConfig = Field(TrainConfig(epochs=1, lr=0.01), description="fine-tuning after each round")
    # evaluation
    attacks: list[AttackConfig] = Field(default_factory=lambda: [AttackConfig(name="fgsm"),
                                                                 AttackConfig(name="pgd")], min_length=1,
                                        description="the validation suite (robust accuracy: per-sample worst "
                                                    "case)")
    latency: LatencyConfig = Field(LatencyConfig(), description="how the pruned model is timed")
    # final evaluation on the test split (never used for selection)
    test_size: int | None = Field(None, ge=1, description="seeded test subset; default: the whole test split")
    final_attacks: list[AttackConfig] | None = Field(None, min_length=1, description="default: attacks")
    eps_grid: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=list, description="eps values of the robustness curve (L-inf attacks of the final suite)")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v):
        return one_of(v, DATASETS, "dataset")

    @model_validator(mode="before")
    @classmethod
    def _weights_are_the_baseline(cls, data):
        return weights_are_the_baseline(data, data.get("model_weights") if isinstance(data, dict) else None)

    @model_validator(mode="after")
    def _model_known(self):
        try:
            object.__setattr__(self, "model_code", carried_code(self.model, self.model_code))
            check_model_name(self.model)
        except ValueError as e:
            raise ValueError(f"model: {e}") from None
        if (self.data_mean is None) != (self.data_std is None):
            raise ValueError("data_mean: set data_mean and data_std together")
        return self

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v, info):
        granularity = info.data.get("granularity", "filter")
        return one_of(v, CRITERIA[granularity], f"{granularity} criterion")

    @field_validator("granularity")
    @classmethod
    def _granularity(cls, v, info):
        model = info.data.get("model")
        if v == "layer" and model in BUILTIN_MODELS and model not in BUILTIN_WITH_REMOVABLE_BLOCKS:
            raise ValueError(f"model '{model}' has no removable blocks; layer pruning allowed for: "
                             f"{', '.join(sorted(BUILTIN_WITH_REMOVABLE_BLOCKS))} and networks with residual "
                             f"blocks from other sources")
        return v

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v):
        return open_unit_interval(v)

    @field_validator("attacks", "final_attacks")
    @classmethod
    def _unique_attacks(cls, v):
        names = [a.name for a in v or []]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"attack '{dup[0]}' listed twice; each attack may appear once")
        return v

    @model_validator(mode="after")
    def _criterion_params_fit(self):
        criterion = CRITERIA[self.granularity].get(self.criterion)
        if criterion is None:  # already refused by the criterion check
            return self
        label = f"{self.granularity} criterion '{self.criterion}'"
        try:
            criterion.check_names(self.criterion_params, label)
            criterion.params(**self.criterion_params)
        except ValidationError as e:
            raise ValueError(f"criterion_params.{format_validation_error(e)} ({label})") from None
        except ValueError as e:
            raise ValueError(f"criterion_params: {e}") from None
        return self

    @model_validator(mode="after")
    def _transforms_resolve(self):
        try:
            self.resolved_transforms
        except ValueError as e:
            message = str(e)
            raise ValueError(message if message.startswith("transforms") else f"transforms: {message}") from None
        return self

    @cached_property
    def resolved_transforms(self) -> ResolvedTransforms:
        """Every preprocessing setting, the defaults filled in (see transforms_config.py)."""
        return self.transforms.resolve(self.dataset, self.model, self.image_size, DATASETS[self.dataset].side)

    @model_validator(mode="after")
    def _data_available(self):
        info = DATASETS[self.dataset]
        if info.needs_files and not self.download:
            if self.data_dir is None:
                raise ValueError(f"data_dir: {self.dataset} is read from disk; set data_dir"
                                 + (" (or download: true to fetch it)" if info.loader else ""))
            problem = info.files_problem(self.data_dir, self.data_options())
            if problem:
                raise ValueError(f"data_dir: {problem}")
        return self

    @model_validator(mode="after")
    def _val_split_fits(self):
        try:
            check_val_size(self.dataset, self.val_size, self.data_dir, self.data_options())
        except ValueError as e:
            raise ValueError(f"val_size: {e}") from None
        return self

    def data_options(self) -> dict:
        """What a dataset is opened with: its transforms; for a streamed one, its reading options too."""
        if DATASETS[self.dataset].opener is None:
            return {"transforms": self.resolved_transforms}
        options = {"transforms": self.resolved_transforms, "workers": self.data_workers, "mean": self.data_mean,
                   "std": self.data_std, "image_column": self.image_column, "label_column": self.label_column,
                   "test_shards": self.test_shards}
        if self.image_size is not None:
            options["image_size"] = self.image_size
        return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}

    def attack_specs(self) -> list[AttackSpec]:
        """The selection suite, resolved (validation split)."""
        return [a.spec(DATASETS[self.dataset].default_eps) for a in self.attacks]

    def final_attack_specs(self) -> list[AttackSpec]:
        """The final suite, resolved (test split)."""
        return [a.spec(DATASETS[self.dataset].default_eps) for a in self.final_attacks or self.attacks]

    def training_settings(self, phase: str) -> TrainSettings:
        """`baseline` or `finetune`, its method's budget resolved (the dataset's eps by default)."""
        return getattr(self, phase).settings(self.amp, DATASETS[self.dataset].default_eps)

    def seeds(self) -> dict[str, int]:
        """Every seed a trial uses, by purpose (one place, so records match what ran). The data
        (splits, evaluation and test subsets) follow `seed`; what a replica redraws (the global
        RNG of pruning, the calibration sample, the fine-tuning's order and augmentation, the
        attacks' random starts) follows `trial_seed`, by default the same."""
        s = self.seed
        t = s if self.trial_seed is None else self.trial_seed
        return {"splits": s, "training": t, "calibration": t + 1, "eval_subset": s, "test_subset": s,
                "attacks": t, "finetune": t + 100}

    def records(self) -> dict:
        """What a reader needs to know what was measured: resolved attacks, split sizes, seeds."""
        sizes = DATASETS[self.dataset].split_sizes(self.val_size, self.data_dir, self.data_options())
        sizes.update(eval=min(self.eval_size, sizes["val"]), test_eval=self.test_eval_size(),
                     calibration=min(self.calib_size, sizes["train"]))
        return {"transforms": self.resolved_transforms.record(),
                "attacks": [s.record() for s in self.attack_specs()],
                "final_attacks": [s.record() for s in self.final_attack_specs()],
                "eps_grid": list(self.eps_grid), "splits": sizes, "seeds": self.seeds(),
                "criterion_params": self.resolved_criterion_params(),
                "training_methods": {phase: self.training_settings(phase).method.record()
                                     for phase in ("baseline", "finetune")}}

    def test_eval_size(self) -> int:
        """Test images the final evaluation measures (`test_size`, at most the test split)."""
        test = DATASETS[self.dataset].split_sizes(self.val_size, self.data_dir, self.data_options())["test"]
        return min(self.test_size or test, test)

    def resolved_criterion_params(self) -> dict:
        """The criterion's parameters with their defaults filled in."""
        return CRITERIA[self.granularity][self.criterion].resolve(self.criterion_params)

    def prune_settings(self) -> PruneSettings:
        return PruneSettings(self.granularity, self.criterion, self.ratio, self.iterations, self.global_pruning,
                             dict(self.criterion_params), self.round_to)


_TYPE_NAMES = {"int_parsing": "an integer", "float_parsing": "a number", "bool_parsing": "true or false",
               "int_from_float": "an integer", "string_type": "a string", "list_type": "a list",
               "dict_type": "a mapping", "model_type": "a mapping"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def format_validation_error(err: ValidationError) -> str:
    """The first error as one line: 'field.path: message' (model-level checks, which have
    no location, already start with their field name)."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "literal_error":
        msg = f"invalid value {e.get('input')!r}; allowed: {msg.removeprefix('Input should be ')}"
    elif e["type"] in _TYPE_NAMES:
        msg = f"got {e.get('input')!r}; expected {_TYPE_NAMES[e['type']]}"
    elif e["type"] in _BOUNDS:
        limit = next(iter(e["ctx"].values()))
        msg = f"got {e.get('input')!r}; allowed: {_BOUNDS[e['type']]} {limit}"
    elif e["type"] == "string_pattern_mismatch":
        msg = f"got {e.get('input')!r}; allowed: characters matching {e['ctx']['pattern']}"
    elif e["type"] == "too_short":
        msg = "must not be empty"
    return f"{loc}: {msg}" if loc else msg


def settings_key(fields: dict) -> str:
    """A short stable name for a set of settings (JSON-serializable): 16 hex digits of SHA-256."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
