"""Small ONNX models shaped like YOLOv8 exports, built in memory with the `onnx` package.

- `constant_output_model`: returns a fixed `[1, 4 + classes, N]` tensor whatever the input,
  so a test knows exactly which boxes the engine must decode and un-letterbox.
- `yolo_like_model`: random-weight convolutions with YOLOv8's strides (8, 16, 32) and output
  layout; `YOLOV8N_PLAN` sizes it to about YOLOv8n's compute (see `plan_gflops`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def _input(input_size: int | None) -> onnx.ValueInfoProto:
    side: int | str = input_size if input_size is not None else "side"
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, side, side])


def _model(graph: onnx.GraphProto, names: Mapping[int, str] | None) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    if names is not None:
        # Ultralytics writes the class names as a Python dict literal.
        helper.set_model_props(model, {"names": repr(dict(names))})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def constant_output_model(
    output: npt.NDArray[np.float32],
    *,
    input_size: int | None = 640,
    names: Mapping[int, str] | None = None,
) -> bytes:
    """A model whose output is `output` (shape [1, 4 + classes, N]) for any input."""
    constant = numpy_helper.from_array(output.astype(np.float32), "fixed")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        # The input is read (mean * 0) so the graph is a real function of it.
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_yolo",
        [_input(input_size)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[constant, zero],
    )
    return _model(graph, names)


@dataclass(frozen=True)
class ConvPlan:
    """Channels of the stem and of each stride's stage, and how many 3x3 convolutions each
    stage repeats after its stride-2 convolution (strides 2, 4, 8, 16, 32)."""

    channels: tuple[int, int, int, int, int]
    repeats: tuple[int, int, int, int]


# YOLOv8n: 8.7 GFLOPs at 640 (Ultralytics counts 2 FLOPs per multiply-add). This plan:
# 2 x 4.30 G multiply-adds = 8.6 GFLOPs at 640, 3.7 M parameters (YOLOv8n: 3.2 M).
YOLOV8N_PLAN = ConvPlan(channels=(16, 32, 64, 128, 256), repeats=(2, 5, 5, 4))
TINY_PLAN = ConvPlan(channels=(4, 8, 8, 8, 8), repeats=(0, 0, 0, 0))


def _layers(plan: ConvPlan) -> list[tuple[int, int, int, int]]:
    """(in channels, out channels, stride, output stride) of every 3x3 convolution."""
    layers = [(3, plan.channels[0], 2, 2)]
    for stage, (before, after) in enumerate(zip(plan.channels, plan.channels[1:], strict=False)):
        stride = 4 << stage
        layers.append((before, after, 2, stride))
        layers += [(after, after, 1, stride)] * plan.repeats[stage]
    return layers


def plan_gflops(plan: ConvPlan, input_size: int, num_classes: int) -> float:
    """GFLOPs (2 per multiply-add) of `yolo_like_model(plan)` at `input_size`."""
    macs = 0
    for before, after, _, out_stride in _layers(plan):
        macs += (input_size // out_stride) ** 2 * after * before * 9
    for stride, channels in zip((8, 16, 32), plan.channels[2:], strict=True):
        macs += (input_size // stride) ** 2 * channels * (4 + num_classes)
    return 2 * macs / 1e9


def yolo_like_model(
    num_classes: int,
    input_size: int,
    *,
    plan: ConvPlan = TINY_PLAN,
    names: Mapping[int, str] | None = None,
    class_bias: float = 0.0,
    seed: int = 0,
) -> bytes:
    """Random convolutions with YOLOv8's output: [1, 4 + classes, N] over strides 8/16/32.

    Boxes are decoded in the graph as an export does: each cell's centre lies within its
    cell, its size up to 8 cells, in input pixels. `class_bias` shifts the class logits: 0
    gives scores around 0.5 everywhere (many candidates for NMS), -6 nearly none (the load
    of a trained model on an empty scene).
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []

    def conv(
        source: str, before: int, after: int, stride: int, kernel: int, name: str, bias: float = 0
    ) -> str:
        std = np.sqrt(2.0 / (before * kernel * kernel))
        weight = rng.normal(0, std, (after, before, kernel, kernel)).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"{name}_w"))
        weights.append(numpy_helper.from_array(np.full(after, bias, np.float32), f"{name}_b"))
        pad = kernel // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [source, f"{name}_w", f"{name}_b"],
                [name],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        return name

    def silu(source: str) -> str:
        nodes.append(helper.make_node("Sigmoid", [source], [f"{source}_sig"]))
        nodes.append(helper.make_node("Mul", [source, f"{source}_sig"], [f"{source}_silu"]))
        return f"{source}_silu"

    features: dict[int, tuple[str, int]] = {}
    current = "images"
    for index, (before, after, stride, out_stride) in enumerate(_layers(plan)):
        current = silu(conv(current, before, after, stride, 3, f"conv{index}"))
        features[out_stride] = (current, after)

    weights.append(numpy_helper.from_array(np.array([1, 4 + num_classes, -1], np.int64), "shape"))
    heads = []
    for stride in (8, 16, 32):
        source, channels = features[stride]
        raw_box = conv(source, channels, 4, 1, 1, f"box{stride}")
        cells = input_size // stride
        scale = np.array([stride, stride, 8 * stride, 8 * stride], np.float32)[None, :, None, None]
        grid = np.zeros((1, 4, cells, cells), np.float32)
        grid[0, 0] = np.arange(cells, dtype=np.float32)[None, :] * stride
        grid[0, 1] = np.arange(cells, dtype=np.float32)[:, None] * stride
        weights.append(numpy_helper.from_array(scale, f"scale{stride}"))
        weights.append(numpy_helper.from_array(grid, f"grid{stride}"))
        nodes.append(helper.make_node("Sigmoid", [raw_box], [f"unit{stride}"]))
        nodes.append(
            helper.make_node("Mul", [f"unit{stride}", f"scale{stride}"], [f"size{stride}"])
        )
        nodes.append(helper.make_node("Add", [f"size{stride}", f"grid{stride}"], [f"xywh{stride}"]))
        logits = conv(source, channels, num_classes, 1, 1, f"cls{stride}", class_bias)
        nodes.append(helper.make_node("Sigmoid", [logits], [f"score{stride}"]))
        nodes.append(
            helper.make_node(
                "Concat", [f"xywh{stride}", f"score{stride}"], [f"head{stride}"], axis=1
            )
        )
        nodes.append(helper.make_node("Reshape", [f"head{stride}", "shape"], [f"flat{stride}"]))
        heads.append(f"flat{stride}")
    nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))
    anchors = sum((input_size // stride) ** 2 for stride in (8, 16, 32))
    output = helper.make_tensor_value_info(
        "output0", TensorProto.FLOAT, [1, 4 + num_classes, anchors]
    )
    graph = helper.make_graph(nodes, "yolo_like", [_input(input_size)], [output], weights)
    return _model(graph, names)


def yolo_output(
    boxes: Sequence[tuple[float, float, float, float, int, float]],
    num_classes: int,
    anchors: int = 32,
) -> npt.NDArray[np.float32]:
    """A YOLOv8 output holding `boxes` as (cx, cy, w, h, class id, score) in input pixels;
    the other anchors score 0."""
    output = np.zeros((1, 4 + num_classes, anchors), np.float32)
    for anchor, (cx, cy, w, h, class_id, score) in enumerate(boxes):
        output[0, :4, anchor] = (cx, cy, w, h)
        output[0, 4 + class_id, anchor] = score
    return output
