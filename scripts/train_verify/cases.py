from gen import onehot, regress, yolo_boxes


def net(batch=4, sub=1, h=16, w=16, c=3, lr=0.1, mom=0.9, decay=0.0005, extra="policy=constant\n"):
    return (
        f"[net]\nbatch={batch}\nsubdivisions={sub}\nheight={h}\nwidth={w}\nchannels={c}\n"
        f"learning_rate={lr}\nmomentum={mom}\ndecay={decay}\n{extra}\n"
    )


YOLO_TINY = (
    net(
        batch=2,
        h=32,
        w=32,
        lr=0.01,
        extra="burn_in=2\npolicy=steps\nsteps=3,5\nscales=.5,.2\nmax_batches=10\n",
    )
    + """
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 3,4,5
anchors = 4,5, 7,9, 10,8, 12,20, 20,14, 26,28
classes=2
num=6
jitter=.3
ignore_thresh = .5
truth_thresh = 1
random=0

[route]
layers = -4

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers = -1, 4

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 0,1,2
anchors = 4,5, 7,9, 10,8, 12,20, 20,14, 26,28
classes=2
num=6
jitter=.3
ignore_thresh = .5
truth_thresh = 1
random=0
"""
)

DARKNET19 = (
    net(
        batch=4,
        h=16,
        w=16,
        lr=0.1,
        mom=0.9,
        decay=0.0005,
        extra="burn_in=2\npower=2\npolicy=poly\nmax_batches=20\n",
    )
    + """
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=1
activation=leaky

[convolutional]
filters=5
size=1
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
groups=1
"""
)


def connected_acts(acts):
    s = net(
        batch=4,
        h=4,
        w=4,
        c=2,
        lr=0.05,
        mom=0.8,
        decay=0.001,
        extra="policy=step\nstep=2\nscale=.5\n",
    )
    for a in acts:
        s += f"[connected]\noutput=8\nactivation={a}\n\n"
    s += "[connected]\noutput=4\nactivation=linear\n\n[softmax]\n"
    return s


DECONV = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\n")
    + """
[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky

[deconvolutional]
filters=4
size=2
stride=2
activation=leaky

[deconvolutional]
batch_normalize=1
filters=3
size=3
stride=1
pad=1
activation=relu

[convolutional]
filters=3
size=1
stride=1
activation=linear

[avgpool]

[softmax]
"""
)

LOCAL = (
    net(batch=4, h=8, w=8, c=2, lr=0.05, extra="policy=constant\n")
    + """
[convolutional]
filters=2
size=3
stride=1
pad=1
activation=leaky

[local]
filters=4
size=3
stride=1
pad=1
activation=leaky

[local]
filters=3
size=3
stride=2
pad=0
activation=linear

[connected]
output=3
activation=linear

[softmax]
"""
)

SHORTCUT = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=exp\ngamma=.9\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=tanh

[shortcut]
from=-2
activation=logistic

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=relu

[shortcut]
from=-3
activation=elu

[avgpool]

[connected]
output=3
activation=linear

[softmax]
"""
)

CROP = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\n")
    + """
[crop]
crop_height=8
crop_width=8
flip=0
angle=0
saturation=1
exposure=1

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[avgpool]

[softmax]
"""
)

SUBDIV_CONN_BN = (
    net(
        batch=8,
        sub=2,
        h=4,
        w=4,
        c=2,
        lr=0.1,
        mom=0.9,
        decay=0.0005,
        extra="policy=sigmoid\ngamma=.5\nstep=1\n",
    )
    + """
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[connected]
batch_normalize=1
output=8
activation=leaky

[connected]
output=4
activation=linear

[softmax]
"""
)


def cost(t):
    return (
        net(batch=4, h=4, w=4, c=2, lr=0.05, mom=0.0, decay=0.0, extra="policy=constant\n")
        + f"""
[connected]
output=8
activation=leaky

[connected]
output=4
activation=linear

[cost]
type={t}
"""
    )


MIDDLE = (
    net(
        batch=4,
        h=8,
        w=8,
        lr=0.05,
        mom=0.5,
        decay=0.01,
        extra="policy=steps\nsteps=1,2\nscales=.5,2\n",
    )
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=linear

[l2norm]

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=linear

[dropout]
probability=.3

[convolutional]
filters=3
size=1
stride=1
activation=linear

[avgpool]

[softmax]
"""
)


def MASKY(rows, truths, rng):
    import numpy as np

    return np.where(rng.random((rows, truths)) < 0.3, -1234.0, rng.uniform(-1, 1, (rows, truths)))


LOGI = (
    net(batch=4, h=4, w=4, c=2, lr=0.05, extra="policy=constant\n")
    + """
[connected]
output=8
activation=leaky

[connected]
output=4
activation=linear

[logistic]
"""
)

CASES = {
    "tv_logistic_head": dict(cfg=LOGI, K=3, ymaker=onehot, seed=25),
    "tv_yolov3_tiny": dict(cfg=YOLO_TINY, K=4, ymaker=yolo_boxes(3), seed=11),
    "tv_darknet19": dict(cfg=DARKNET19, K=3, ymaker=onehot, seed=12),
    "tv_connected_acts1": dict(
        cfg=connected_acts(["relu", "tanh", "elu", "logistic"]), K=3, ymaker=onehot, seed=13
    ),
    "tv_connected_acts2": dict(
        cfg=connected_acts(["linear", "ramp", "leaky", "relie"]), K=3, ymaker=onehot, seed=14
    ),
    "tv_connected_acts3": dict(
        cfg=connected_acts(["plse", "lhtan", "hardtan", "selu", "loggy"]),
        K=3,
        ymaker=onehot,
        seed=15,
    ),
    "tv_local": dict(cfg=LOCAL, K=3, ymaker=onehot, seed=17),
    "tv_shortcut_act": dict(cfg=SHORTCUT, K=3, ymaker=onehot, seed=18),
    "tv_crop": dict(cfg=CROP, K=3, ymaker=onehot, seed=19),
    "tv_subdiv_conn_bn": dict(cfg=SUBDIV_CONN_BN, K=3, ymaker=onehot, seed=20),
    "tv_cost_l1": dict(cfg=cost("L1"), K=3, ymaker=regress, seed=21),
    "tv_cost_smooth": dict(cfg=cost("smooth"), K=3, ymaker=regress, seed=22),
    "tv_cost_masked": dict(cfg=cost("masked"), K=3, ymaker=MASKY, seed=23),
    "tv_middle": dict(cfg=MIDDLE, K=3, ymaker=onehot, seed=24, srand=7),
}

ACTLAYER = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=linear
learning_rate=0.5

[activation]
activation=tanh

[route]
layers=-1,-2

[convolutional]
filters=3
size=3
stride=1
pad=1
activation=leaky

[avgpool]

[softmax]
"""
)
CASES["tv_activation_layer_lrscale"] = dict(cfg=ACTLAYER, K=3, ymaker=onehot, seed=26)
CASES["tv_yolov3_tiny_subdiv"] = dict(
    cfg=YOLO_TINY.replace("batch=2\nsubdivisions=1", "batch=4\nsubdivisions=2"),
    K=3,
    ymaker=yolo_boxes(2),
    seed=27,
)
CASES["tv_activation_layer"] = dict(
    cfg=ACTLAYER.replace("learning_rate=0.5\n", ""), K=3, ymaker=onehot, seed=26
)
CASES["tv_lrscale"] = dict(
    cfg=ACTLAYER.replace("[activation]\nactivation=tanh\n\n[route]\nlayers=-1,-2\n\n", ""),
    K=3,
    ymaker=onehot,
    seed=26,
)

MISC = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\nadam=1\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=linear

[convolutional]
filters=8
size=3
stride=1
pad=1
groups=2
activation=leaky

[reorg]
stride=2

[route]
layers=-1

[maxpool]
size=3
stride=2

[normalization]
size=3
alpha=.01
beta=.75
kappa=1

[convolutional]
filters=3
size=1
stride=1
activation=linear

[avgpool]

[softmax]
groups=1
temperature=2
"""
)

SHORTCUT2 = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=6
size=3
stride=2
pad=1
activation=leaky

[shortcut]
from=-2
activation=leaky

[upsample]
stride=2
scale=.5

[shortcut]
from=0
activation=linear

[convolutional]
filters=4
size=1
stride=1
activation=linear

[cost]
type=sse
scale=.5
"""
)


def cost_rows(rows, truths, rng):

    return rng.uniform(-1, 1, (rows, truths))


CASES["tv_misc_layers"] = dict(cfg=MISC, K=3, ymaker=onehot, seed=28)
CASES["tv_shortcut_shapes"] = dict(cfg=SHORTCUT2, K=3, ymaker=cost_rows, seed=29)
CASES["tv_deconv"] = dict(cfg=DECONV, K=3, ymaker=onehot, seed=16, perturb_w=False, reparse=True)

CROP2 = (
    net(batch=4, h=10, w=10, lr=0.05, extra="policy=constant\n")
    + """
[crop]
crop_height=8
crop_width=8
flip=1
noadjust=1

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[avgpool]

[softmax]
"""
)

SHORTCUT3 = (
    net(batch=4, h=8, w=8, lr=0.05, extra="policy=constant\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=3
stride=1

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-3
alpha=.5
beta=2
activation=leaky

[avgpool]

[connected]
output=6
activation=leaky

[softmax]
groups=2

[cost]
type=seg
"""
)
CASES["tv_crop_random"] = dict(cfg=CROP2, K=3, ymaker=onehot, seed=30, srand=5)
CASES["tv_shortcut_alpha_softmax_groups"] = dict(cfg=SHORTCUT3, K=3, ymaker=onehot, seed=31)

POOLS = (
    net(batch=4, h=12, w=12, lr=0.05, mom=0.95, decay=0.0001, extra="policy=constant\n")
    + """
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=3
stride=2
padding=2

[upsample]
stride=-2

[upsample]
stride=2

[route]
layers=-1,-3

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
activation=ramp

[avgpool]

[connected]
batch_normalize=1
output=5
activation=leaky

[dropout]
probability=.2

[connected]
output=3
activation=linear

[softmax]
"""
)
CASES["tv_pools"] = dict(cfg=POOLS, K=3, ymaker=onehot, seed=32, srand=3)

RNN = (
    net(batch=4, h=1, w=6, c=1, lr=0.05, extra="policy=constant\ntime_steps=2\n")
    + """
[rnn]
output=5
hidden=4
activation=leaky

[connected]
output=3
activation=linear

[softmax]
"""
)
CASES["tv_rnn"] = dict(cfg=RNN, K=2, ymaker=onehot, seed=33)

YOLOV2 = (
    net(batch=2, h=32, w=32, lr=0.01, extra="burn_in=1\npolicy=steps\nsteps=2\nscales=.1\n")
    + """
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-3

[reorg]
stride=2

[route]
layers=-1,-3

[convolutional]
size=1
stride=1
pad=1
filters=16
activation=linear

[region]
anchors = 0.5,0.6, 1.2,1.5
bias_match=1
classes=3
coords=4
num=2
softmax=1
jitter=.2
rescore=1
object_scale=5
noobject_scale=1
class_scale=1
coord_scale=1
absolute=1
thresh = .6
random=0
"""
)
CASES["tv_yolov2_reorg_region"] = dict(cfg=YOLOV2, K=3, ymaker=yolo_boxes(2), seed=34, seen=12796)
