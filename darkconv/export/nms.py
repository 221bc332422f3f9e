"""ONNX ``NonMaxSuppression`` appended to a decoded graph (``boxes``, ``scores``).

The new outputs follow the common deployment layout (fixed size, padded):

* ``num_detections`` (N,) int64: how many rows of the others are valid;
* ``boxes`` (N, max_det, 4) float: x1 y1 x2 y2, fractions of the network input;
* ``scores`` (N, max_det) float: objectness x class probability, descending;
* ``classes`` (N, max_det) int64: the class index; padding rows are 0 / 0 / -1.

One row per (box, class) whose score is > ``thresh`` and that survives per-class NMS with IoU
``> nms`` suppressed, the same pairs Darknet's ``do_nms_sort`` + ``draw_detections`` print.
Where the results can differ from Darknet: see the README's Export section.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_NMS_OPSET", "append_nms"]

MIN_NMS_OPSET = 13  # Unsqueeze / ReduceSum take their axes as inputs from opset 13 on


def append_nms(model: Any, thresh: float, nms: float, max_det: int) -> Any:
    """Rewrite the ``boxes``/``scores`` outputs of an ONNX ``ModelProto`` into NMS outputs."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    float_type = next(o.type.tensor_type.elem_type for o in graph.output if o.name == "scores")
    for name in ("boxes", "scores"):  # the decoded tensors become internal values
        out = next(o for o in graph.output if o.name == name)
        graph.output.remove(out)
    for node in graph.node:
        node.output[:] = [f"decoded_{o}" if o in ("boxes", "scores") else o for o in node.output]
        node.input[:] = [f"decoded_{i}" if i in ("boxes", "scores") else i for i in node.input]

    def const(name: str, value: Any, dtype: Any = np.int64) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    nodes = []

    def op(kind: str, inputs: list[str], output: str | list[str], **attrs: Any) -> str:
        outs = [output] if isinstance(output, str) else output
        nodes.append(helper.make_node(kind, inputs, outs, name=f"nms_{outs[0]}", **attrs))
        return outs[0]

    boxes, scores = "decoded_boxes", "decoded_scores"
    # float32 thresholds: Darknet compares float32 values with float32 thresholds
    op("Cast", [boxes], "nms_boxes_f", to=TensorProto.FLOAT)
    op("Cast", [scores], "nms_scores_f", to=TensorProto.FLOAT)
    op("Transpose", ["nms_scores_f"], "nms_scores_t", perm=[0, 2, 1])
    op("NonMaxSuppression",
       ["nms_boxes_f", "nms_scores_t", const("nms_max_out", [max_det]),
        const("nms_iou", [nms], np.float32), const("nms_score", [thresh], np.float32)],
       "nms_selected", center_point_box=0)  # fmt: skip
    # selected rows: [batch, class, box]
    op("Gather", ["nms_selected", const("nms_col_b", 0)], "nms_b", axis=1)
    op("Gather", ["nms_selected", const("nms_col_c", 1)], "nms_c", axis=1)
    op("Gather", ["nms_selected", const("nms_cols_bkc", [0, 2, 1])], "nms_bkc", axis=1)
    op("Gather", ["nms_selected", const("nms_cols_bk", [0, 2])], "nms_bk", axis=1)
    op("GatherND", ["nms_scores_f", "nms_bkc"], "nms_s")
    op("GatherND", ["nms_boxes_f", "nms_bk"], "nms_sel_boxes")
    # a dense (N, S) score matrix per image: -inf where the row belongs to another image
    op("Shape", ["nms_boxes_f"], "nms_shape")
    op("Gather", ["nms_shape", const("nms_zero", 0)], "nms_n")
    op("Range", [const("nms_r0", 0), "nms_n", const("nms_r1", 1)], "nms_images")
    op("Unsqueeze", ["nms_images", const("nms_ax1", [1])], "nms_images_col")
    op("Unsqueeze", ["nms_b", const("nms_ax0", [0])], "nms_b_row")
    op("Equal", ["nms_images_col", "nms_b_row"], "nms_mine")
    op("Unsqueeze", ["nms_s", const("nms_ax0b", [0])], "nms_s_row")
    op("Where", ["nms_mine", "nms_s_row", const("nms_ninf", -np.inf, np.float32)], "nms_dense")
    # k = min(S, max_det); TopK per image, then pad to max_det
    op("Shape", ["nms_selected"], "nms_sel_shape")
    op("Slice", ["nms_sel_shape", const("nms_s0", [0]), const("nms_s1", [1])], "nms_S")
    op("Min", ["nms_S", const("nms_maxdet", [max_det])], "nms_k")
    op("TopK", ["nms_dense", "nms_k"], ["nms_top", "nms_top_idx"], axis=1, largest=1, sorted=1)
    op("Cast", ["nms_mine"], "nms_mine_i", to=TensorProto.INT64)
    op("ReduceSum", ["nms_mine_i", const("nms_ax1b", [1])], "nms_count", keepdims=0)
    op("Min", ["nms_count", const("nms_maxdet0", max_det)], "num_detections")
    op("Squeeze", ["nms_k", const("nms_ax0c", [0])], "nms_k0")
    op("Range", [const("nms_r0b", 0), "nms_k0", const("nms_r1b", 1)], "nms_slots")
    op("Unsqueeze", ["nms_slots", const("nms_ax0d", [0])], "nms_slots_row")
    op("Unsqueeze", ["num_detections", const("nms_ax1c", [1])], "nms_num_col")
    op("Less", ["nms_slots_row", "nms_num_col"], "nms_valid")
    op("Unsqueeze", ["nms_valid", const("nms_ax2", [2])], "nms_valid3")
    op("Gather", ["nms_sel_boxes", "nms_top_idx"], "nms_g_boxes", axis=0)
    op("Gather", ["nms_c", "nms_top_idx"], "nms_g_classes", axis=0)
    op("Where", ["nms_valid", "nms_top", const("nms_zf", 0.0, np.float32)], "nms_v_scores")
    op("Where", ["nms_valid3", "nms_g_boxes", const("nms_zf3", 0.0, np.float32)], "nms_v_boxes")
    op("Where", ["nms_valid", "nms_g_classes", const("nms_m1", -1)], "nms_v_classes")
    op("Sub", [const("nms_maxdet1", [max_det]), "nms_k"], "nms_missing")
    z = const("nms_z1", [0])  # pads: every begin, then every end
    op("Concat", [z, z, z, "nms_missing"], "nms_pads2", axis=0)
    op("Concat", [z, z, z, z, "nms_missing", z], "nms_pads3", axis=0)
    op("Pad", ["nms_v_scores", "nms_pads2", const("nms_zf2", 0.0, np.float32)], "nms_p_scores")
    op("Pad", ["nms_v_boxes", "nms_pads3", const("nms_zf4", 0.0, np.float32)], "nms_p_boxes")
    op("Pad", ["nms_v_classes", "nms_pads2", const("nms_m1b", -1)], "classes")
    op("Cast", ["nms_p_scores"], "scores", to=float_type)
    op("Cast", ["nms_p_boxes"], "boxes", to=float_type)
    graph.node.extend(nodes)
    outputs = [
        helper.make_tensor_value_info("num_detections", TensorProto.INT64, ["batch"]),
        helper.make_tensor_value_info("boxes", float_type, ["batch", max_det, 4]),
        helper.make_tensor_value_info("scores", float_type, ["batch", max_det]),
        helper.make_tensor_value_info("classes", TensorProto.INT64, ["batch", max_det]),
    ]
    graph.output.extend(outputs)
    return model
