"""Darknet's losses as deltas: for each layer with a cost (softmax, cost, yolo, region, detection)
the ``l.delta`` and ``l.cost`` its forward computes (softmax_layer.c, cost_layer.c, yolo_layer.c,
region_layer.c, detection_layer.c), vectorised over the batch.

``l.delta`` is not always the gradient of ``l.cost`` (yolo, region, detection): :func:`darknet_loss`
therefore returns a scalar whose value is Darknet's cost and whose backward injects
``-delta`` through a custom autograd Function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from darkconv.errors import UnsupportedError
from darkconv.parse.graph import Layer, Network
from darkconv.train.boxes import Boxes, box_iou, box_rmse, first_valid, layer_options

__all__ = ["LOSS_TYPES", "HeadLoss", "LossResult", "darknet_loss", "head_loss"]

SECRET_NUM = -1234.0  # darknet.h: the "masked" cost type's "no truth" marker


@dataclass(frozen=True)
class HeadLoss:
    """One cost layer's result: ``delta`` is injected (times ``scale``) as ``-gradient`` into
    ``target`` (the head's output; the input for ``[cost]``)."""

    index: int
    target: Tensor
    delta: Tensor
    scale: float
    cost: Tensor
    output: Tensor | None = None  # the training output when it is not the module's (``[cost]``)


@dataclass(frozen=True)
class LossResult:
    loss: Tensor  # scalar: value net_cost / batch, backward -delta / batch
    cost: float  # *net->cost: the mean of the layers' costs
    layer_costs: Mapping[int, float]
    heads: tuple[HeadLoss, ...]


def _rows(truth: Tensor, batch: int, stride: int) -> Tensor:
    """Darknet reads ``net.truth`` as one flat buffer with the layer's own row stride."""
    flat = truth.reshape(-1)
    need = batch * stride
    if flat.numel() < need:
        flat = torch.cat([flat, flat.new_zeros(need - flat.numel())])
    return flat[:need].reshape(batch, stride)


# --- softmax and [cost] --------------------------------------------------------------------------


def softmax_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss | None:
    if int(layer_options(la)["noloss"]):
        return None
    p = out.reshape(out.shape[0], -1)
    t = _rows(truth, p.shape[0], p.shape[1]).to(p.dtype)
    # softmax_x_ent_cpu: delta = t - p; error = t ? -log(p) : 0 (not weighted by t).
    err = torch.where(t != 0, -torch.log(p.double()), torch.zeros_like(p, dtype=torch.float64))
    return HeadLoss(la.index, out, (t - p).reshape(out.shape), 1.0, err.float().sum())


def cost_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    o = layer_options(la)
    x = inp.reshape(inp.shape[0], -1)
    t = _rows(truth, x.shape[0], x.shape[1]).to(x.dtype)
    kind = o["type"]
    if kind == "masked":  # forward_cost_layer: masked truth -> the input takes SECRET_NUM too
        x = torch.where(t == SECRET_NUM, t, x)
    diff = t - x
    if kind == "smooth":  # smooth_l1_cpu
        small = diff.abs() < 1
        delta = torch.where(small, diff, torch.where(diff < 0, 1.0, -1.0).to(x.dtype))
        error = torch.where(small, diff * diff, 2 * diff.abs() - 1)
    elif kind == "L1":  # l1_cpu
        delta = torch.where(diff > 0, 1.0, -1.0).to(x.dtype)
        error = diff.abs()
    else:  # l2_cpu (sse, and seg/wgan/masked on the CPU)
        delta, error = diff, diff * diff
    return HeadLoss(la.index, inp, delta.reshape(inp.shape), float(o["scale"]), error.sum(), error)


def logistic_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    """``[logistic]`` (forward_logistic_layer, blas.c logistic_x_ent_cpu): ``delta = t - p``,
    ``error = -t*log(p) - (1-t)*log(1-p)``; it reads ``net.truth`` with its own row stride."""
    p = out.reshape(out.shape[0], -1)
    t = _rows(truth, p.shape[0], p.shape[1]).to(p.dtype)
    pd, td = p.double(), t.double()
    err = -td * torch.log(pd) - (1 - td) * torch.log(1 - pd)
    return HeadLoss(la.index, out, (t - p).reshape(out.shape), 1.0, err.float().sum())


# --- [yolo] (yolo_layer.c forward_yolo_layer) ------------------------------------------------------


def _winners(pos: Tensor, order: Tensor, size: int) -> Tensor:
    """Mask of the entries that write last at their position (a later truth overwrites)."""
    last = torch.full((size,), -1, dtype=torch.long, device=pos.device)
    last.scatter_reduce_(0, pos, order, reduce="amax")
    return last[pos] == order


def yolo_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    o = layer_options(la)
    b_, _, lh, lw = out.shape
    mask = la.options["mask"] if la.options["mask"] is not None else tuple(range(la.options["num"]))
    n, classes = len(mask), la.options["classes"]
    anchors = torch.tensor(la.options["anchors"] or (), dtype=torch.float32).reshape(-1, 2)
    total = anchors.shape[0]
    _, net_h, net_w = net.input
    y = out.detach().reshape(b_, n, 5 + classes, lh, lw)
    delta = torch.zeros_like(y)
    dev = y.device
    tr = _rows(truth, b_, 450).reshape(b_, 90, 5).to(dev)[:, : int(o["max"])]
    valid = first_valid(tr[..., 0])  # the first x == 0 ends the list
    tb = Boxes(tr[..., 0], tr[..., 1], tr[..., 2], tr[..., 3])
    jj = torch.arange(lh, device=dev, dtype=torch.float32).reshape(1, 1, lh, 1)
    ii = torch.arange(lw, device=dev, dtype=torch.float32).reshape(1, 1, 1, lw)
    anc = anchors[list(mask)].to(dev)
    aw, ah = anc[:, 0].reshape(1, n, 1, 1), anc[:, 1].reshape(1, n, 1, 1)
    pred = Boxes(
        (ii + y[:, :, 0]) / lw,
        (jj + y[:, :, 1]) / lh,
        torch.exp(y[:, :, 2].double()).float() * aw / net_w,
        torch.exp(y[:, :, 3].double()).float() * ah / net_h,
    )
    # 1. every prediction: best IoU over the truths; objectness 0 - p, 0 past ignore_thresh.
    iou = torch.nan_to_num(box_iou(pred.unsqueeze(-1), tb.view(b_, 1, 1, 1, -1)), nan=0.0)
    iou = torch.where(valid.view(b_, 1, 1, 1, -1), iou, torch.zeros_like(iou))
    best, best_t = iou.max(dim=-1) if iou.shape[-1] else (torch.zeros_like(y[:, :, 0]),) * 2
    p_obj = y[:, :, 4]
    obj = torch.where(best > o["ignore_thresh"], torch.zeros_like(p_obj), -p_obj)
    hit = best > o["truth_thresh"]
    obj = torch.where(hit, 1 - p_obj, obj)
    cls_set = torch.zeros_like(y[:, :, 5:], dtype=torch.bool)  # classes asked at each position
    touched = hit.clone()
    if bool(hit.any()):
        bidx, nidx, jidx, iidx = hit.nonzero(as_tuple=True)
        t_sel = best_t[hit]
        tbox = tr[bidx, t_sel]
        _box_delta(delta, y, bidx, nidx, jidx, iidx, tbox, anc[nidx], lw, lh, net_w, net_h)
        _mark(cls_set, bidx, nidx, jidx, iidx, tbox[:, 4])
    # 2. every truth: best anchor by shape over all anchors; only if it is in this mask.
    bt, tt = valid.nonzero(as_tuple=True)
    if bt.numel():
        tbox = tr[bt, tt]
        shape_iou = box_iou(
            Boxes.of_size(tbox[:, 2:3], tbox[:, 3:4]),
            Boxes.of_size(anchors[:, 0].to(dev) / net_w, anchors[:, 1].to(dev) / net_h),
        )  # (N, total)
        best_n = _first_argmax(shape_iou)
        lookup = torch.full((total,), -1, dtype=torch.long, device=dev)
        lookup[torch.tensor(list(mask), device=dev)] = torch.arange(n, device=dev)
        mask_n = lookup[best_n]
        keep = mask_n >= 0
        bt, tt, tbox, mask_n, best_n = bt[keep], tt[keep], tbox[keep], mask_n[keep], best_n[keep]
        ci = (tbox[:, 0] * lw).long().clamp(0, lw - 1)  # (int)(truth.x * l.w)
        cj = (tbox[:, 1] * lh).long().clamp(0, lh - 1)
        pos = ((bt * n + mask_n) * lh + cj) * lw + ci
        win = _winners(pos, tt, b_ * n * lh * lw)
        wb, wn, wj, wi = bt[win], mask_n[win], cj[win], ci[win]
        _box_delta(
            delta, y, wb, wn, wj, wi, tbox[win], anchors[best_n[win]].to(dev), lw, lh, net_w, net_h
        )
        obj[wb, wn, wj, wi] = 1 - p_obj[wb, wn, wj, wi]
        _mark(cls_set, bt, mask_n, cj, ci, tbox[:, 4])
        touched[bt, mask_n, cj, ci] = True
    delta[:, :, 4] = obj
    # delta_yolo_class: (c == class) - p; a second truth at the same place only sets its class.
    p_cls = y[:, :, 5:]
    cls_delta = torch.where(cls_set, 1 - p_cls, -p_cls)
    delta[:, :, 5:] = torch.where(touched.unsqueeze(2), cls_delta, delta[:, :, 5:])
    delta = delta.reshape(out.shape)
    return HeadLoss(la.index, out, delta, 1.0, (delta * delta).sum())


def _first_argmax(scores: Tensor) -> Tensor:
    """Index of the first strictly greatest value, 0 when all are <= 0 (``if (iou > best)``)."""
    if scores.shape[-1] == 0:
        return torch.zeros(scores.shape[:-1], dtype=torch.long, device=scores.device)
    best = scores.max(dim=-1, keepdim=True).values
    idx = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    first = torch.where(scores == best, idx, scores.shape[-1]).min(dim=-1).values
    return torch.where(best.squeeze(-1) > 0, first, torch.zeros_like(first))


def _mark(cls_set: Tensor, b: Tensor, n: Tensor, j: Tensor, i: Tensor, cls: Tensor) -> None:
    c = cls.long()
    ok = (c >= 0) & (c < cls_set.shape[2])
    cls_set[b[ok], n[ok], c[ok], j[ok], i[ok]] = True


def _box_delta(
    delta: Tensor, y: Tensor, b: Tensor, n: Tensor, j: Tensor, i: Tensor, tbox: Tensor,
    anchor: Tensor, lw: int, lh: int, net_w: int, net_h: int,
) -> None:  # fmt: skip
    """delta_yolo_box with scale ``2 - w*h``."""
    scale = 2 - tbox[:, 2] * tbox[:, 3]
    tx = tbox[:, 0] * lw - i.float()
    ty = tbox[:, 1] * lh - j.float()
    tw = torch.log((tbox[:, 2] * net_w / anchor[:, 0]).double()).float()
    th = torch.log((tbox[:, 3] * net_h / anchor[:, 1]).double()).float()
    for k, target in enumerate((tx, ty, tw, th)):
        delta[b, n, k, j, i] = scale * (target - y[b, n, k, j, i])


# --- [region] (region_layer.c forward_region_layer) ------------------------------------------------

REGION_PRIOR_SEEN = 12800  # while *net->seen < 12800 every prediction is pulled to its anchor


def region_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    o = layer_options(la)
    coords, classes, n = la.options["coords"], la.options["classes"], la.options["num"]
    soft = bool(la.options["softmax"])
    background = bool(la.options["background"])
    b_, _, lh, lw = out.shape
    y = out.detach().reshape(b_, n, coords + classes + 1, lh, lw)
    dev = y.device
    delta = torch.zeros_like(y)
    bias = torch.tensor(la.options["anchors"] or (0.5,) * (2 * n), dtype=torch.float32)
    bias = bias.reshape(-1, 2)[:n].to(dev)
    bw, bh = bias[:, 0].reshape(1, n, 1, 1), bias[:, 1].reshape(1, n, 1, 1)
    tr = _rows(truth, b_, 30 * (coords + 1)).reshape(b_, 30, coords + 1).to(dev)
    valid = first_valid(tr[..., 0])
    tb = Boxes(tr[..., 0], tr[..., 1], tr[..., 2], tr[..., 3])
    jj = torch.arange(lh, device=dev, dtype=torch.float32).reshape(1, 1, lh, 1)
    ii = torch.arange(lw, device=dev, dtype=torch.float32).reshape(1, 1, 1, lw)
    ew = torch.exp(y[:, :, 2].double()).float()
    eh = torch.exp(y[:, :, 3].double()).float()
    pred = Boxes((ii + y[:, :, 0]) / lw, (jj + y[:, :, 1]) / lh, ew * bw / lw, eh * bh / lh)
    # 1. every prediction: objectness toward 0 unless it overlaps a truth; the prior phase.
    iou = torch.nan_to_num(box_iou(pred.unsqueeze(-1), tb.view(b_, 1, 1, 1, -1)), nan=0.0)
    iou = torch.where(valid.view(b_, 1, 1, 1, -1), iou, torch.zeros_like(iou))
    best = iou.max(dim=-1).values if iou.shape[-1] else torch.zeros_like(y[:, :, 0])
    p_obj = y[:, :, coords]
    obj = o["noobject_scale"] * ((1 if background else 0) - p_obj)
    obj = torch.where(best > o["thresh"], torch.zeros_like(obj), obj)
    if seen < REGION_PRIOR_SEEN:  # delta_region_box toward (cell centre, anchor), scale .01
        tx = ((ii + 0.5) / lw) * lw - ii
        ty = ((jj + 0.5) / lh) * lh - jj
        tw = torch.log(((bw / lw) * lw / bw).double()).float()
        th = torch.log(((bh / lh) * lh / bh).double()).float()
        for k, target in enumerate((tx, ty, tw, th)):
            delta[:, :, k] = 0.01 * (target - y[:, :, k])
    # 2. every truth: the best anchor at its cell by shape.
    bt, tt = valid.nonzero(as_tuple=True)
    if bt.numel():
        tbox = tr[bt, tt]
        ci = (tbox[:, 0] * lw).long().clamp(0, lw - 1)
        cj = (tbox[:, 1] * lh).long().clamp(0, lh - 1)
        if o["bias_match"]:
            pw, ph = (bias[:, 0] / lw).expand(len(bt), n), (bias[:, 1] / lh).expand(len(bt), n)
        else:
            pw, ph = pred.w[bt, :, cj, ci], pred.h[bt, :, cj, ci]
        shape_iou = box_iou(Boxes.of_size(pw, ph), Boxes.of_size(tbox[:, 2:3], tbox[:, 3:4]))
        best_n = _first_argmax(shape_iou)
        pos = ((bt * n + best_n) * lh + cj) * lw + ci
        win = _winners(pos, tt, b_ * n * lh * lw)
        wb, wn, wj, wi, wt = bt[win], best_n[win], cj[win], ci[win], tbox[win]
        scale = o["coord_scale"] * (2 - wt[:, 2] * wt[:, 3])
        targets = (
            wt[:, 0] * lw - wi.float(),
            wt[:, 1] * lh - wj.float(),
            torch.log((wt[:, 2] * lw / bias[wn, 0]).double()).float(),
            torch.log((wt[:, 3] * lh / bias[wn, 1]).double()).float(),
        )
        for k, target in enumerate(targets):
            delta[wb, wn, k, wj, wi] = scale * (target - y[wb, wn, k, wj, wi])
        box = Boxes(
            pred.x[wb, wn, wj, wi],
            pred.y[wb, wn, wj, wi],
            pred.w[wb, wn, wj, wi],
            pred.h[wb, wn, wj, wi],
        )
        iou_t = box_iou(box, Boxes(wt[:, 0], wt[:, 1], wt[:, 2], wt[:, 3]))
        p = p_obj[wb, wn, wj, wi]
        target_obj = 0.0 if background else (iou_t if o["rescore"] else 1.0)
        obj[wb, wn, wj, wi] = o["object_scale"] * (target_obj - p)
        lo = coords + 1
        p_cls = y[:, :, lo:]
        cls_set = torch.zeros_like(p_cls, dtype=torch.bool)
        touched = torch.zeros_like(p_obj, dtype=torch.bool)
        if soft:  # delta_region_class with tag 0: the last truth writes the whole vector
            _mark(cls_set, wb, wn, wj, wi, wt[:, 4])
            touched[wb, wn, wj, wi] = True
        else:  # tag 1: a second truth at the same place only sets its own class
            _mark(cls_set, bt, best_n, cj, ci, tbox[:, 4])
            touched[bt, best_n, cj, ci] = True
        cls_delta = o["class_scale"] * torch.where(cls_set, 1 - p_cls, -p_cls)
        delta[:, :, lo:] = torch.where(touched.unsqueeze(2), cls_delta, delta[:, :, lo:])
    delta[:, :, coords] = obj
    delta = delta.reshape(out.shape)
    return HeadLoss(la.index, out, delta, 1.0, (delta * delta).sum())


# --- [detection] (detection_layer.c forward_detection_layer, yolov1) ------------------------------


def detection_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss:
    o = layer_options(la)
    side, n, classes, coords = (
        la.options["side"],
        la.options["num"],
        la.options["classes"],
        la.options["coords"],
    )
    if o["random"] and seen < 64000:
        raise UnsupportedError(
            f"layer {la.index}: [detection] random=1 (rand() box choice while seen < 64000) is not supported",
            la.span,
        )
    locs = side * side
    b_ = out.shape[0]
    y = out.detach().reshape(b_, -1)
    delta = torch.zeros_like(y)
    c0, c1 = locs * classes, locs * (classes + n)
    probs = y[:, :c0].reshape(b_, locs, classes)
    conf = y[:, c0:c1].reshape(b_, locs, n)
    boxes = y[:, c1 : c1 + locs * n * coords].reshape(b_, locs, n, coords)
    tr = _rows(truth, b_, locs * (1 + coords + classes)).reshape(b_, locs, 1 + classes + coords)
    tr = tr.to(y.device)
    is_obj = tr[..., 0].trunc() != 0  # int is_obj = net.truth[...]
    d_conf = o["noobject_scale"] * (0 - conf)
    d_probs = torch.where(
        is_obj.unsqueeze(-1), o["class_scale"] * (tr[..., 1 : 1 + classes] - probs), 0.0
    )
    t = tr[..., 1 + classes : 1 + classes + 4]
    tbox = Boxes(t[..., 0] / side, t[..., 1] / side, t[..., 2], t[..., 3])
    ow, oh = boxes[..., 2], boxes[..., 3]
    if o["sqrt"]:
        ow, oh = ow * ow, oh * oh
    obox = Boxes(boxes[..., 0] / side, boxes[..., 1] / side, ow, oh)
    iou = box_iou(obox, tbox.unsqueeze(-1))  # (B, locs, n)
    rmse = box_rmse(obox, tbox.unsqueeze(-1))
    best_index = torch.full_like(is_obj, -1, dtype=torch.long)
    best_iou = torch.zeros_like(tbox.x)
    best_rmse = torch.full_like(tbox.x, 20.0)
    for j in range(n):  # once a box overlaps, the highest IoU wins; before, the lowest RMSE
        by_iou = (best_iou > 0) | (iou[..., j] > 0)
        take_iou = by_iou & (iou[..., j] > best_iou)
        take_rmse = ~by_iou & (rmse[..., j] < best_rmse)
        best_iou = torch.where(take_iou, iou[..., j], best_iou)
        best_rmse = torch.where(take_rmse, rmse[..., j], best_rmse)
        best_index = torch.where(take_iou | take_rmse, j, best_index)
    if o["forced"]:
        best_index = torch.where(t[..., 2] * t[..., 3] < 0.1, 1, 0).to(best_index)
    chosen = is_obj & (best_index >= 0)
    bb, ll = chosen.nonzero(as_tuple=True)
    jb = best_index[bb, ll]
    p = conf[bb, ll, jb]
    target = iou[bb, ll, jb] if o["rescore"] else 1.0
    d_conf[bb, ll, jb] = o["object_scale"] * (target - p)
    d_box = torch.zeros_like(boxes)
    tt = t[bb, ll]
    if o["sqrt"]:
        tt = torch.cat([tt[:, :2], torch.sqrt(tt[:, 2:4])], dim=1)
    d_box[bb, ll, jb, :4] = o["coord_scale"] * (tt - boxes[bb, ll, jb, :4])
    delta[:, :c0] = d_probs.reshape(b_, -1)
    delta[:, c0:c1] = d_conf.reshape(b_, -1)
    delta[:, c1 : c1 + locs * n * coords] = d_box.reshape(b_, -1)
    delta = delta.reshape(out.shape)
    return HeadLoss(la.index, out, delta, 1.0, (delta * delta).sum())


# --- dispatch ----------------------------------------------------------------------------------------

LossFn = Any
LOSS_TYPES: dict[str, LossFn] = {
    "softmax": softmax_loss,
    "cost": cost_loss,
    "logistic": logistic_loss,
    "yolo": yolo_loss,
    "region": region_loss,
    "detection": detection_loss,
}


def head_loss(
    la: Layer, net: Network, inp: Tensor, out: Tensor, truth: Tensor, seen: int
) -> HeadLoss | None:
    fn = LOSS_TYPES.get(la.type)
    if fn is None:
        return None
    return fn(la, net, inp, out, truth, seen)


class _Inject(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, value: Tensor, *pairs: Tensor) -> Tensor:
        ctx.grads = pairs[len(pairs) // 2 :]
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grads = tuple(g * grad for g in ctx.grads)
        return (None, *grads, *(None,) * len(grads))


def darknet_loss(
    model: Any,
    outputs: Sequence[Tensor | None],
    truth: Tensor,
    *,
    seen: int,
    batch: int | None = None,
) -> LossResult:
    """Darknet's cost of one forward (``calc_network_cost``: the mean over the cost layers) as a
    scalar tensor ``net_cost / batch`` whose backward is ``-delta * scale / batch`` on each head.
    ``seen`` is ``*net->seen`` already advanced for this batch (``[region]``'s prior phase)."""
    net: Network = model.network
    check_trainable(net)
    rows = outputs[0].shape[0] if outputs and outputs[0] is not None else truth.shape[0]
    batch = batch or rows
    heads: list[HeadLoss] = []
    with torch.no_grad():
        for la in net.layers:
            if la.type not in LOSS_TYPES:
                continue
            src = la.sources[0]
            inp = outputs[src] if src >= 0 else None
            out = outputs[la.index]
            h = head_loss(la, net, inp, out, truth, seen)  # type: ignore[arg-type]
            if h is not None:
                heads.append(h)
    if not heads:
        raise UnsupportedError(
            "the network has no layer with a cost (softmax, cost, logistic, yolo, region, detection)"
        )
    costs = torch.stack([h.cost.float() for h in heads])
    net_cost = costs.mean()
    value = net_cost / batch
    grads = [(-h.delta * (h.scale / batch)).to(h.target.dtype) for h in heads]
    loss = _Inject.apply(value.to(heads[0].target.dtype), *[h.target for h in heads], *grads)
    return LossResult(loss, float(net_cost), {h.index: float(h.cost) for h in heads}, tuple(heads))


# Layers whose Darknet training is not reproduced: the recurrent layers keep their hidden state
# across datums and calls and split the batch into time_steps (forward_rnn_layer & co), which
# the training forward does not model (measured against pjreddie: 3e-2 off after one call).
UNTRAINABLE = frozenset({"rnn", "gru", "lstm", "crnn", "conv_lstm"})


def check_trainable(net: Network) -> None:
    """Refuse what the loss code does not reproduce, naming the option."""
    dialect = getattr(net, "dialect", "pjreddie")
    for la in net.layers:
        if la.type in UNTRAINABLE:
            raise UnsupportedError(
                f"layer {la.index}: training a recurrent [{la.type}] layer is not supported",
                la.span,
            )
        if dialect != "pjreddie" and la.type in (
            "yolo",
            "region",
            "detection",
            "Gaussian_yolo",
            "gaussian_yolo",
        ):
            opts = dict(la.cfg)
            named = ", ".join(
                f"{k}={opts[k]}"
                for k in ("iou_loss", "iou_normalizer", "cls_normalizer", "scale_x_y", "new_coords")
                if k in opts
            )
            raise UnsupportedError(
                f"layer {la.index}: training the AlexeyAB [{la.type}] loss is not supported yet"
                + (
                    f" ({named})"
                    if named
                    else " (its deltas differ from pjreddie's: iou_loss, normalizers)"
                ),
                la.span,
            )
        if la.type == "region" and (la.options.get("coords", 4) > 4 or dict(la.cfg).get("tree")):
            raise UnsupportedError(
                f"layer {la.index}: training [region] with tree= or coords > 4 is not supported",
                la.span,
            )
        if la.type in ("yolo", "region") and dict(la.cfg).get("map"):
            raise UnsupportedError(
                f"layer {la.index}: [{la.type}] map= is not supported in training", la.span
            )
