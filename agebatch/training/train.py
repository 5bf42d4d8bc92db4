"""`agebatch train`: fine-tune the bundled model, or train the original ResNet50 recipe.

Both architectures go through one loop: faces are decoded once into memory the way the
model will see them in production (the card's crop and resampling), a seeded validation
split is set aside, augmentation layers (flip, small rotation, brightness) run in front of
the network during training only, Adam minimises the mean absolute error (optionally with
sample weights against the age imbalance), early stopping watches the validation MAE, and
every epoch is backed up so the same command resumes after an interruption. At the end the
best weights are saved with a model card and measured by `agebatch evaluate`'s own code on
the validation faces, so the file drops into `agebatch run --model`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agebatch.config import PredictConfig, TrainConfig
from agebatch.errors import InputError
from agebatch.predict.card import CARD_SCHEMA, ModelCard
from agebatch.predict.images import load_faces
from agebatch.predict.model import AgeModel, bundled_model_path, compute_device, load_model
from agebatch.quiet import import_keras
from agebatch.training.evaluate import (
    LabelledFaces,
    confusion_record,
    curve_measurable,
    curve_record,
    evaluate,
    read_labelled,
    validation_faces,
)

log = logging.getLogger(__name__)

DIST_SIGMA = 2.0  # years: width of the Gaussian label distribution of the mae+dist loss
IMAGENET_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_NOTOP
)
# keras.applications.resnet50.preprocess_input ("caffe"): BGR order, ImageNet means subtracted.
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)
ERROR_KEYS = (
    "n",
    "mae",
    "bias",
    "mae_by_band",
    "n_by_band",
    "teen_miss_rate",
    "false_challenge_rate",
    "share_tvd",
)
RESEARCH_ONLY = (
    "Trained on faces licensed for non-commercial research only (UTKFace-style data): "
    "use this model for research, never as a shipped default."
)


@dataclass
class TrainResult:
    """What a finished run produced and measured."""

    model_path: Path
    epochs_run: int
    best_epoch: int
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None  # the bundled model on the same validation faces


def validation_split(names: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation faces: a seeded draw over the names sorted."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(names), size=max(1, round(share * len(names))), replace=False)
    mask = np.zeros(len(names), dtype=bool)
    mask[[order[i] for i in chosen]] = True
    return mask


def sample_weights(ages: np.ndarray, balance: str, bin_years: int = 5) -> np.ndarray:
    """Per-face weights against age imbalance: (count of its 5-year bin)^-p, mean 1."""
    if balance == "none":
        return np.ones(len(ages), dtype=np.float32)
    bins = np.minimum(np.floor(ages / bin_years).astype(int), 100 // bin_years)
    counts = np.bincount(bins)
    power = 0.5 if balance == "sqrt" else 1.0
    weights = counts[bins].astype(np.float64) ** -power
    return (weights / weights.mean()).astype(np.float32)


def decode_faces(
    paths: Sequence[Path],
    size: tuple[int, int],
    crop: tuple[float, float, float, float] | None,
    resample: str,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All faces as one uint8 (N, H, W, 3) array, and a mask of the readable ones."""
    chunks = [list(paths[i : i + 256]) for i in range(0, len(paths), 256)]
    images: list[np.ndarray | None] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for chunk in pool.map(lambda c: load_faces(c, size, crop, resample), chunks):
            images.extend(chunk)
            if progress is not None:
                progress(len(chunk))
    readable = np.array([img is not None for img in images], dtype=bool)
    blank = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    return np.stack([img if img is not None else blank for img in images]), readable


def build_resnet50(config: TrainConfig) -> Any:
    """The original recipe: ResNet50 backbone, global average pooling, Dense(1, ReLU).

    Input is raw 0..255 RGB; a frozen 1x1 convolution inside the model does the ImageNet
    "caffe" preprocessing (RGB->BGR, means subtracted), so the card says preprocessing in_model.
    """
    import keras

    size = config.image_size
    inputs = keras.Input((size, size, 3), name="rgb")
    to_bgr = keras.layers.Conv2D(3, 1, name="imagenet_preprocess", trainable=False)
    x = to_bgr(inputs)
    to_bgr.set_weights(
        [
            np.eye(3, dtype=np.float32)[::-1].reshape(1, 1, 3, 3),
            -np.array(IMAGENET_BGR_MEANS, dtype=np.float32),
        ]
    )
    backbone = keras.applications.ResNet50(
        include_top=False, weights=_resnet_weights(config.weights), input_shape=(size, size, 3)
    )
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    age = keras.layers.Dense(1, activation="relu", name="age", dtype="float32")(x)
    return keras.Model(inputs, age, name="resnet50_age")


def _resnet_weights(weights: str) -> str | None:
    """Keras's `weights` argument: None, a local file, or the cached/downloaded ImageNet file."""
    if weights == "none":
        return None
    if weights != "imagenet":
        if not Path(weights).is_file():
            raise InputError(f"--weights {weights} is not a file (use imagenet, none or a path).")
        return weights
    cached = Path.home() / ".keras" / "models" / IMAGENET_NOTOP
    if cached.is_file():
        return str(cached)
    import keras

    try:
        return keras.utils.get_file(IMAGENET_NOTOP, IMAGENET_URL, cache_subdir="models")
    except Exception:  # urllib raises several types when offline
        raise InputError(
            f"ImageNet weights could not be downloaded from {IMAGENET_URL} (offline?): fetch "
            f"{IMAGENET_NOTOP} on a connected machine and pass --weights PATH, or use "
            "--weights none."
        ) from None


def augmenter(config: TrainConfig, seed: int) -> Any:
    """Training-only augmentation: horizontal flip, small rotation, brightness, jitter."""
    import keras

    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(config.rotation_deg / 360, fill_mode="reflect", seed=seed),
        keras.layers.RandomBrightness(config.brightness, value_range=(0, 255), seed=seed),
    ]
    if config.jitter > 0:
        layers += [
            keras.layers.RandomZoom(config.jitter, fill_mode="reflect", seed=seed),
            keras.layers.RandomTranslation(
                config.jitter / 2, config.jitter / 2, fill_mode="reflect", seed=seed
            ),
        ]
    return keras.Sequential(layers, name="augment")


def distribution_loss(ages: Sequence[float], sigma: float = DIST_SIGMA) -> Callable[..., Any]:
    """Loss on an age distribution: MAE of its expected age + KL from a Gaussian label.

    The Gaussian (sigma years around the true age, over the net's age classes) teaches the
    whole distribution, not just its mean (label distribution learning, as in DLDL); ages
    above the last class pile their label mass onto it.
    """
    from keras import ops

    classes = np.asarray(ages, dtype=np.float32)

    def mae_plus_kl(y_true: Any, probs: Any) -> Any:
        y = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
        expected = ops.sum(probs * classes, axis=1)
        log_label = ops.log_softmax(-0.5 * ops.square((classes - y) / sigma), axis=1)
        kl = ops.sum(ops.exp(log_label) * (log_label - ops.log(probs + 1e-7)), axis=1)
        return ops.abs(expected - y[:, 0]) + kl

    return mae_plus_kl


def expected_age_mae(ages: Sequence[float]) -> Callable[..., Any]:
    """Metric `mae` of the expected age of a distribution output (so val_mae means years)."""
    from keras import ops

    classes = np.asarray(ages, dtype=np.float32)

    def mae(y_true: Any, probs: Any) -> Any:
        y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        return ops.abs(ops.sum(probs * classes, axis=1) - y)

    return mae


def extend_ages(net: Any, card: dict[str, Any], max_age: int) -> Any:
    """The default net with whole-year classes up to max_age added after its last (80).

    New classes start as copies of the last one, 6 nats less likely (their probability is
    about 0.25% of the last class's), so the extended net first predicts as before; training
    then moves mass onto them for older faces. Updates the card's output ages and range.
    """
    import keras

    ages = [float(a) for a in card["output"]["ages"]]
    extra = [float(a) for a in range(int(ages[-1]) + 1, max_age + 1)]
    if not extra:
        return net
    kernel, bias = net.get_layer("logits").get_weights()
    kernel = np.concatenate([kernel, np.repeat(kernel[:, -1:], len(extra), axis=1)], axis=1)
    bias = np.concatenate([bias, np.full(len(extra), bias[-1] - 6.0, dtype=bias.dtype)])
    all_ages = ages + extra
    logits = keras.layers.Dense(len(all_ages), name="logits")
    probs = keras.layers.Softmax(name="probabilities")(logits(net.get_layer("pool").output))
    age_layer = keras.layers.Dense(1, use_bias=False, trainable=False, name="age")
    extended = keras.Model(net.inputs, age_layer(probs), name=net.name)
    logits.set_weights([kernel, bias])
    age_layer.set_weights([np.asarray(all_ages, dtype=np.float32).reshape(-1, 1)])
    card["output"]["ages"] = all_ages
    card["output"]["range"] = [all_ages[0], all_ages[-1]]
    card["output"]["computed_as"] = f"sum_i softmax_i * ages_i over {len(all_ages)} classes"
    return extended


def base_card(config: TrainConfig) -> dict[str, Any]:
    """The card the trained model starts from: the bundled one, or a fresh ResNet50 card.

    Named and versioned as a trained model from the start; _save adds the time to the version.
    """
    named = {"name": f"agebatch-{config.arch}-trained", "version": f"{config.arch}-trained"}
    if config.arch == "default":
        card = ModelCard.read(bundled_model_path()).to_dict()
        stale = (
            "error",
            "age_confusion",
            "group_confusion",
            "test_time_augmentation",
            "conditions",
        )
        for measured in (*stale, "operating_curve"):
            card.pop(measured, None)
        card["face"].pop("realigned", None)  # measured on the bundled model's ages too
        card["architecture"]["fine_tuned_from"] = card["version"]
        return card | named
    size = config.image_size
    return named | {
        "schema": CARD_SCHEMA,
        "input": {
            "height": size,
            "width": size,
            "color": "RGB",
            "preprocessing": "in_model",
            "dtype": "float32",
            "layout": "NHWC",
            "range": [0, 255],
            "in_model_normalization": "ImageNet caffe: RGB->BGR, means subtracted",
        },
        "output": {"kind": "age", "shape": ["N", 1], "unit": "years", "layer": "age"},
        "face": {
            "aligned_crop": {"box": [0.0, 0.0, 1.0, 1.0], "resample": "bilinear"},
            "for": "UTKFace-style aligned & cropped faces (the whole photo is the face crop)",
        },
        "architecture": {
            "family": "ResNet50 + global average pooling + Dense(1, ReLU)",
            "weights": config.weights if config.weights in ("none", "imagenet") else "file",
        },
    }


def train(
    faces_dir: Path,
    out: Path,
    config: TrainConfig,
    *,
    workdir: Path | None = None,
    fresh: bool = False,
    predict: PredictConfig,
    verbose: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train, keep the best epoch, save out + its card, and evaluate on the validation split.

    Progress is backed up in workdir (default <out>.train/) after every epoch; calling again
    with the same settings resumes there. The work dir is removed once the model is saved.
    predict: how faces are decoded and the model measured (workers, batch size).
    """
    if out.suffix != ".keras":
        raise InputError(f"--out must end in .keras, not {out.name}.")
    started = time.perf_counter()
    workdir = workdir or out.with_name(out.stem + ".train")
    faces = _select_faces(faces_dir, config)
    names = [p.name for p in faces.paths]
    is_val = validation_split(names, config.val_share, config.seed)

    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    gpu = compute_device() == "GPU"
    card = base_card(config)
    net = _build_net(config, card, gpu)
    framing = ModelCard.from_dict(card)  # the input size and crop run reads photos with
    log.info("Decoding %d faces at %dx%d", len(names), *framing.size)
    x, readable = decode_faces(
        faces.paths, framing.size, framing.crop, framing.resample, predict.workers
    )
    if not readable.all():
        log.warning("%d unreadable face photos skipped", int((~readable).sum()))
    train_mask, val_mask = readable & ~is_val, readable & is_val
    y = faces.ages.astype(np.float32)

    trainer = _compile_trainer(net, card, config, framing.size, gpu)
    _prepare_workdir(workdir, config, fresh)
    best_path = workdir / "best.weights.h5"
    state = _State(workdir / "state.json")
    log.info(
        "Training %s on %d faces, validating on %d (%s)",
        config.arch,
        int(train_mask.sum()),
        int(val_mask.sum()),
        "GPU" if gpu else "CPU",
    )
    trainer.fit(
        x[train_mask],
        y[train_mask],
        sample_weight=sample_weights(y[train_mask], config.balance),
        validation_data=(x[val_mask], y[val_mask]),
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        callbacks=[*_fit_callbacks(workdir, best_path, config, state), *callbacks],
        verbose=verbose if verbose is not None else (1 if sys.stderr.isatty() else 2),
    )
    if best_path.is_file():
        trainer.load_weights(str(best_path))
    seconds = time.perf_counter() - started + state.seconds_before
    tta = _choose_flip_tta(
        AgeModel(ModelCard.from_dict(card), net), x[val_mask], y[val_mask], config.flip_tta
    )
    val_names = sorted(n for n, v in zip(names, is_val, strict=True) if v)
    card["test_time_augmentation"] = "flip" if tta["flip"] else "none"
    card["training"] = {
        "config": config.model_dump(mode="json"),
        "faces": len(names),
        "unreadable": int((~readable).sum()),
        "validation": {
            "rule": "names sorted; numpy.random.default_rng(seed).choice(n, round(share * n))",
            "seed": config.seed,
            "share": config.val_share,
            "n": len(val_names),
            "sha1_of_names": hashlib.sha1("\n".join(val_names).encode()).hexdigest(),
            "files": val_names,
        },
        "epochs_run": state.epochs_run,
        "best_epoch": state.best_epoch,
        "flip_tta": tta,
        "seconds": round(seconds, 1),
        "device": "GPU" if gpu else "CPU",
        "history": read_history(workdir / "history.csv"),
    }
    _save(net, out, card)
    metrics, baseline = measure(out, faces_dir, predict, baseline=config.arch == "default")
    shutil.rmtree(workdir, ignore_errors=True)
    return TrainResult(out, state.epochs_run, state.best_epoch, seconds, metrics, baseline)


def _select_faces(faces_dir: Path, config: TrainConfig) -> LabelledFaces:
    """The labelled faces to train and validate on: all, or a seeded subset of --limit."""
    faces = read_labelled(faces_dir)
    if config.limit is not None and config.limit < len(faces.paths):
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(faces.paths), config.limit, replace=False))
        faces = LabelledFaces([faces.paths[i] for i in keep], faces.ages[keep])
    if len(faces.paths) < 2:
        raise InputError(
            f"{faces_dir} has {len(faces.paths)} labelled face(s); training needs 2 or more."
        )
    return faces


def _build_net(config: TrainConfig, card: dict[str, Any], gpu: bool) -> Any:
    """The net to train: the bundled one (age classes extended), or a new ResNet50.

    ResNet50 is built in mixed precision on a GPU (its age output stays float32).
    """
    import keras

    if config.arch == "default":
        return extend_ages(load_model().keras_model, card, config.max_age)
    if not gpu:
        return build_resnet50(config)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return build_resnet50(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _compile_trainer(
    net: Any, card: dict[str, Any], config: TrainConfig, size: tuple[int, int], gpu: bool
) -> Any:
    """Augmentation in front of the net (or of its age distribution, for mae+dist), compiled.

    The metric is always called `mae` and means years, so `val_mae` drives the callbacks.
    """
    import keras

    if config.loss_name == "mae+dist":
        ages = card["output"]["ages"]
        head = keras.Model(net.inputs, net.get_layer("probabilities").output)
        loss, metric = distribution_loss(ages), expected_age_mae(ages)
    else:
        head, loss, metric = net, "mean_absolute_error", "mae"
    trainer = keras.Sequential([augmenter(config, config.seed), head], name="trainer")
    trainer.build((None, size[1], size[0], 3))
    optimizer = (
        keras.optimizers.AdamW(config.adam_rate, weight_decay=config.weight_decay)
        if config.weight_decay > 0
        else keras.optimizers.Adam(config.adam_rate)
    )
    trainer.compile(optimizer=optimizer, loss=loss, metrics=[metric], jit_compile=gpu)
    return trainer


def _fit_callbacks(workdir: Path, best_path: Path, config: TrainConfig, state: _State) -> list:
    """Backup every epoch (resume), keep the best weights, decay the rate, stop early, log."""
    import keras

    rate, decay = config.adam_rate, config.lr_decay
    return [
        keras.callbacks.BackupAndRestore(str(workdir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(best_path),
            monitor="val_mae",
            mode="min",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=state.best,
        ),
        keras.callbacks.LearningRateScheduler(lambda epoch: rate * decay**epoch),
        keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=config.patience),
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
        keras.callbacks.LambdaCallback(on_epoch_end=state.on_epoch_end),
    ]


class _State:
    """Records the best validation MAE, epochs run and time in the work dir (for resuming)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.best: float | None = saved.get("best_val_mae")
        self.best_epoch: int = saved.get("best_epoch", 0)
        self.epochs_run: int = saved.get("epochs_run", 0)
        self.seconds_before: float = saved.get("seconds", 0.0)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Record the epoch (1-based) and whether it is the best so far."""
        value = (logs or {}).get("val_mae")
        self.epochs_run = epoch + 1
        if value is not None and (self.best is None or value < self.best):
            self.best, self.best_epoch = float(value), epoch + 1
        seconds = self.seconds_before + time.perf_counter() - self._started
        self.path.write_text(
            json.dumps(
                {
                    "best_val_mae": self.best,
                    "best_epoch": self.best_epoch,
                    "epochs_run": self.epochs_run,
                    "seconds": seconds,
                }
            )
        )


def _prepare_workdir(workdir: Path, config: TrainConfig, fresh: bool) -> None:
    """Create the work dir, or check a leftover one belongs to the same settings (resume).

    A leftover without a finished epoch (no state.json) has nothing to resume and is reused.
    """
    settings = workdir / "config.json"
    wanted = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    started = (workdir / "state.json").is_file()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
        started = False
    if started and settings.is_file() and settings.read_text() != wanted:
        raise InputError(
            f"{workdir} holds an interrupted run with other settings: rerun with the same "
            "options to resume it, or add --fresh to start over."
        )
    if started:
        log.info("Resuming the run in %s", workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    settings.write_text(wanted)


def _choose_flip_tta(model: AgeModel, x: np.ndarray, y: np.ndarray, mode: str) -> dict[str, Any]:
    """Measure flip test-time averaging on the validation faces; keep it when asked or better.

    Both figures come from AgeModel.predict, the one place flip averaging happens.
    """
    plain_model = AgeModel(model.card.updated(test_time_augmentation="none"), model.keras_model)
    flip_model = AgeModel(model.card.updated(test_time_augmentation="flip"), model.keras_model)
    plain = float(np.abs(plain_model.predict(x) - y).mean())
    flipped = float(np.abs(flip_model.predict(x) - y).mean())
    use = mode == "on" or (mode == "auto" and flipped < plain)
    log.info("Validation MAE %.3f plain, %.3f with flip averaging: %s", plain, flipped, use)
    return {"flip": use, "val_mae_plain": round(plain, 3), "val_mae_flip": round(flipped, 3)}


def _save(net: Any, out: Path, card: dict[str, Any]) -> None:
    """Write the .keras file and its card, named, versioned and marked research-only."""
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save(out)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    card.update(version=f"{card['version']}+{stamp}", model_file=out.name)
    base_licence = {"base_model": card["licence"]} if "licence" in card else {}
    card["licence"] = {"training_data": RESEARCH_ONLY, **base_licence}
    ModelCard.from_dict(card, f"card of {out.name}").write(out)


def read_history(path: Path) -> list[dict[str, float]]:
    """Per-epoch loss, MAE, validation MAE and learning rate from Keras's CSVLogger file."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = {int(r["epoch"]): r for r in csv.DictReader(handle)}  # a resumed epoch: last wins
    return [
        {key: round(float(value), 5) for key, value in row.items() if value not in ("", None)}
        | {"epoch": epoch + 1}
        for epoch, row in sorted(rows.items())
    ]


def measure(
    model_path: Path, faces_dir: Path, predict: PredictConfig, baseline: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """`agebatch evaluate` on the validation split; error and confusion go into the card.

    With baseline=True the bundled model is measured on the same faces too (the card keeps
    it as training.baseline), so the card says whether fine-tuning beat its starting point.
    """
    model = load_model(model_path)
    faces = validation_faces(model.card, faces_dir)
    result, predicted = evaluate(model, faces, predict)
    before = evaluate(load_model(), faces, predict)[0] if baseline else None
    error = {key: result[key] for key in ERROR_KEYS}
    error["measured_on"] = "validation split (see training.validation)"
    error["command"] = "agebatch evaluate --split validation"
    training = dict(model.card.training or {})
    if before is not None:
        training["baseline"] = {
            "model_version": before["model_version"],
            **{key: before[key] for key in ERROR_KEYS},
        }
    curve = curve_measurable(result) and curve_record(
        result, faces_dir.name, "validation", model.card
    )
    card = model.card.updated(
        error=error,
        age_confusion=confusion_record(faces, predicted, "validation"),
        operating_curve=curve or None,
        training=training,
    )
    card.write(model_path)
    return result, before
