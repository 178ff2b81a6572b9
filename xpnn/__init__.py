"""xpnn: the neural networks of *Deep Learning from Scratch*, on CPU or GPU.

All math is written against an Array API namespace ``xp`` taken from the data,
so the same code runs on NumPy, CuPy, PyTorch and array-api-strict. Choose
where new arrays (parameters, data, random numbers) are created with
:func:`set_backend`, :func:`use_backend` or ``XPNN_BACKEND``.
"""

__version__ = "0.1.0"

# The modules a user reaches for as attributes (``xpnn.io.save(...)``); plot
# and bench stay out: they import matplotlib and the textbook reference.
from xpnn import (
    convnet,
    datasets,
    functions,
    gradient,
    io,
    layers,
    multilayer,
    optimizers,
    precision,
)
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
from xpnn.callbacks import Callback
from xpnn.convnet import DeepConvNet, SimpleConvNet
from xpnn.models import LayeredNet, LayeredTwoLayerNet, SimpleNet, TwoLayerNet, simpleNet
from xpnn.multilayer import MultiLayerNet, MultiLayerNetExtend
from xpnn.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from xpnn.precision import LossScaler, MixedPrecision
from xpnn.random import Generator, default_rng
from xpnn.trainer import Trainer

__all__ = [
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
    "SimpleConvNet",
    "SimpleNet",
    "Trainer",
    "TwoLayerNet",
    "__version__",
    "asarray",
    "available_backends",
    "backend_of",
    "backend_status",
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
    "multilayer",
    "optimizers",
    "precision",
    "set_backend",
    "simpleNet",
    "to_numpy",
    "use_backend",
    "zeros",
]
