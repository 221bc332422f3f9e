"""The detector losses as Darknet's deltas: ``[yolo]`` (yolo_layer.c), ``[region]``
(region_layer.c) and ``[detection]`` (detection_layer.c, yolov1), vectorised over the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from darkconv.errors import UnsupportedError
from darkconv.parse.graph import Layer, Network
from darkconv.train.boxes import Boxes, box_iou, box_rmse, first_valid, layer_options
from darkconv.train.deltas import HeadLoss, first_argmax, mark_classes, truth_rows, winners

__all__ = ["yolo_loss", "region_loss", "detection_loss", "REGION_PRIOR_SEEN"]


# --- [yolo] (yolo_layer.c forward_yolo_layer) ------------------------------------------------------


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
    tr = truth_rows(truth, b_, 450).reshape(b_, 90, 5).to(dev)[:, : int(o["max"])]
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
        mark_classes(cls_set, bidx, nidx, jidx, iidx, tbox[:, 4])
    # 2. every truth: best anchor by shape over all anchors; only if it is in this mask.
    bt, tt = valid.nonzero(as_tuple=True)
    if bt.numel():
        tbox = tr[bt, tt]
        shape_iou = box_iou(
            Boxes.of_size(tbox[:, 2:3], tbox[:, 3:4]),
            Boxes.of_size(anchors[:, 0].to(dev) / net_w, anchors[:, 1].to(dev) / net_h),
        )  # (N, total)
        best_n = first_argmax(shape_iou)
        lookup = torch.full((total,), -1, dtype=torch.long, device=dev)
        lookup[torch.tensor(list(mask), device=dev)] = torch.arange(n, device=dev)
        mask_n = lookup[best_n]
        keep = mask_n >= 0
        bt, tt, tbox, mask_n, best_n = bt[keep], tt[keep], tbox[keep], mask_n[keep], best_n[keep]
        ci = (tbox[:, 0] * lw).long().clamp(0, lw - 1)  # (int)(truth.x * l.w)
        cj = (tbox[:, 1] * lh).long().clamp(0, lh - 1)
        pos = ((bt * n + mask_n) * lh + cj) * lw + ci
        win = winners(pos, tt, b_ * n * lh * lw)
        wb, wn, wj, wi = bt[win], mask_n[win], cj[win], ci[win]
        _box_delta(
            delta, y, wb, wn, wj, wi, tbox[win], anchors[best_n[win]].to(dev), lw, lh, net_w, net_h
        )
        obj[wb, wn, wj, wi] = 1 - p_obj[wb, wn, wj, wi]
        mark_classes(cls_set, bt, mask_n, cj, ci, tbox[:, 4])
        touched[bt, mask_n, cj, ci] = True
    delta[:, :, 4] = obj
    # delta_yolo_class: (c == class) - p; a second truth at the same place only sets its class.
    p_cls = y[:, :, 5:]
    cls_delta = torch.where(cls_set, 1 - p_cls, -p_cls)
    delta[:, :, 5:] = torch.where(touched.unsqueeze(2), cls_delta, delta[:, :, 5:])
    delta = delta.reshape(out.shape)
    return HeadLoss(la.index, out, delta, 1.0, (delta * delta).sum())


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
    tr = truth_rows(truth, b_, 30 * (coords + 1)).reshape(b_, 30, coords + 1).to(dev)
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
        best_n = first_argmax(shape_iou)
        pos = ((bt * n + best_n) * lh + cj) * lw + ci
        win = winners(pos, tt, b_ * n * lh * lw)
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
            mark_classes(cls_set, wb, wn, wj, wi, wt[:, 4])
            touched[wb, wn, wj, wi] = True
        else:  # tag 1: a second truth at the same place only sets its own class
            mark_classes(cls_set, bt, best_n, cj, ci, tbox[:, 4])
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
    tr = truth_rows(truth, b_, locs * (1 + coords + classes)).reshape(
        b_, locs, 1 + classes + coords
    )
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
