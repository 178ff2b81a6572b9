"""xpnn: the neural networks of *Deep Learning from Scratch*, on CPU or GPU.

All math is written against an Array API namespace ``xp`` taken from the data,
so the same code runs on NumPy, CuPy, PyTorch and array-api-strict. Choose
where new arrays (parameters, data, random numbers) are created with
:func:`set_backend`, :func:`use_backend` or ``XPNN_BACKEND``.
"""

import sys as _sys

# The modules a user reaches for as attributes (``xpnn.io.save(...)``); plot
# and bench stay out: they import matplotlib and the textbook reference.
from xpnn import (
    datasets,
    functions,
    gradient,
    io,
    layers,
    linalg,
    models,
    optimizers,
    text,
    training,
    util,
)
from xpnn._version import __version__
from xpnn.backend import (
    BACKEND_NAMES,
    Backend,
    BackendMismatchError,
    BackendUnavailableError,
    asarray,
    available_backends,
    backend_of,
    backend_status,
    device_of,
    get_backend,
    get_namespace,
    info,
    set_backend,
    to_numpy,
    use_backend,
    zeros,
)
from xpnn.layers import conv
from xpnn.models import (
    CBOW,
    AttentionSeq2seq,
    BetterRnnlm,
    BetterRnnlmGen,
    DeepConvNet,
    LayeredNet,
    LayeredTwoLayerNet,
    MultiLayerNet,
    MultiLayerNetExtend,
    PeekySeq2seq,
    Rnnlm,
    RnnlmGen,
    Seq2seq,
    SimpleCBOW,
    SimpleConvNet,
    SimpleNet,
    SimpleRnnlm,
    SimpleSkipGram,
    SkipGram,
    TwoLayerNet,
    TwoLayerNetReLU,
    convnet,
    multilayer,
    simpleNet,
)
from xpnn.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from xpnn.random import Generator, default_rng
from xpnn.training import (
    Callback,
    LossScaler,
    MixedPrecision,
    PerplexitySchedule,
    RnnlmTrainer,
    Trainer,
    precision,
)

#: Module paths of xpnn 0.1 before the packages (``xpnn.trainer`` is now
#: ``xpnn.training.trainer``...): the same module objects under their old
#: names, so ``from xpnn.multilayer import MultiLayerNet`` keeps working.
#: Docs and examples use the new paths.
MOVED_MODULES = {
    "xpnn.conv": "xpnn.layers.conv",
    "xpnn.convnet": "xpnn.models.convnet",
    "xpnn.multilayer": "xpnn.models.multilayer",
    "xpnn.trainer": "xpnn.training.trainer",
    "xpnn.book_trainer": "xpnn.training.book_trainer",
    "xpnn.callbacks": "xpnn.training.callbacks",
    "xpnn.checkpointer": "xpnn.training.checkpointer",
    "xpnn.precision": "xpnn.training.precision",
    "xpnn.graph_step": "xpnn.training.graph_step",
}
for _old, _new in MOVED_MODULES.items():
    _sys.modules[_old] = _sys.modules[_new]
    globals().setdefault(_old.rpartition(".")[2], _sys.modules[_new])
del _old, _new

__all__ = [
    "AttentionSeq2seq",
    "BetterRnnlm",
    "BetterRnnlmGen",
    "CBOW",
    "Callback",
    "DeepConvNet",
    "SGD",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Nesterov",
    "RMSprop",
    "BACKEND_NAMES",
    "Backend",
    "BackendMismatchError",
    "BackendUnavailableError",
    "Generator",
    "LayeredNet",
    "LayeredTwoLayerNet",
    "LossScaler",
    "MixedPrecision",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "PeekySeq2seq",
    "PerplexitySchedule",
    "Rnnlm",
    "RnnlmGen",
    "RnnlmTrainer",
    "Seq2seq",
    "SimpleCBOW",
    "SimpleConvNet",
    "SimpleNet",
    "SimpleRnnlm",
    "SimpleSkipGram",
    "SkipGram",
    "Trainer",
    "TwoLayerNet",
    "TwoLayerNetReLU",
    "__version__",
    "asarray",
    "available_backends",
    "backend_of",
    "backend_status",
    "conv",
    "convnet",
    "datasets",
    "default_rng",
    "device_of",
    "functions",
    "get_backend",
    "get_namespace",
    "get_optimizer",
    "gradient",
    "info",
    "io",
    "layers",
    "linalg",
    "models",
    "multilayer",
    "optimizers",
    "precision",
    "set_backend",
    "simpleNet",
    "text",
    "to_numpy",
    "training",
    "use_backend",
    "util",
    "zeros",
]
