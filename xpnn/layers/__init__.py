"""Layers with forward and backward side by side, as the book's ``common/layers.py``.

One module per idea, as a reader of the book would look for it:

* :mod:`xpnn.layers.base`: :class:`Layer`, its config, the :data:`LAYERS`
  registry, :func:`register_layer` and :func:`backward` (the one backprop loop);
* :mod:`xpnn.layers.dense`: :class:`MatMul`, :class:`Affine`, :class:`Flatten`;
* :mod:`xpnn.layers.activations`: :class:`Sigmoid`, :class:`Relu`, :class:`Softmax`;
* :mod:`xpnn.layers.losses`: :class:`SoftmaxWithLoss` (and :func:`one_hot`);
* :mod:`xpnn.layers.regularization`: :class:`Dropout`, :class:`BatchNormalization`;
* :mod:`xpnn.layers.embedding`: :class:`Embedding`, :class:`EmbeddingDot`,
  :class:`SigmoidWithLoss` (vol. 2, ch. 4's word2vec layers);
* :mod:`xpnn.layers.negative_sampling`: :class:`UnigramSampler`,
  :class:`NegativeSamplingLoss` (vol. 2, ch. 4; samples drawn on the device);
* :mod:`xpnn.layers.recurrent`: :class:`RNN`, :class:`TimeRNN`, :class:`LSTM`,
  :class:`TimeLSTM` (vol. 2, ch. 5-6; the book's ``common/time_layers.py``);
* :mod:`xpnn.layers.gru`: :class:`GRU`, :class:`TimeGRU` (vol. 2, ch. 6; the same file
  of the book);
* :mod:`xpnn.layers.bidirectional`: :class:`TimeBiLSTM` (vol. 2, ch. 6; the same file
  of the book);
* :mod:`xpnn.layers.time_distributed`: :class:`TimeEmbedding`, :class:`TimeAffine`,
  :class:`TimeSoftmaxWithLoss`, :class:`TimeDropout`, :class:`TimeSigmoidWithLoss`
  (vol. 2, ch. 5-6; the same file of the book);
* :mod:`xpnn.layers.attention`: :class:`WeightSum`, :class:`AttentionWeight`,
  :class:`Attention`, :class:`TimeAttention` (vol. 2, ch. 8; the book's
  ``ch08/attention_layer.py``);
* :mod:`xpnn.layers.conv`: :func:`im2col`, :func:`col2im`, :class:`Convolution`,
  :class:`Pooling` (vol. 1, ch. 7);
* :mod:`xpnn.layers.naive`: :class:`MulLayer`, :class:`AddLayer` (vol. 1, ch. 5's
  nodes on plain numbers, the book's ``layer_naive.py``; not layers of :class:`Layer`).

``from xpnn.layers import Affine, Convolution`` works as the book's
``from common.layers import ...`` does.
"""

# The order layers register in, which error messages list them in.
# isort: off
from xpnn.layers.base import LAYERS, Layer, backward, register_layer
from xpnn.layers.dense import Affine, Flatten, MatMul
from xpnn.layers.activations import Relu, Sigmoid, Softmax
from xpnn.layers.regularization import BatchNormalization, Dropout
from xpnn.layers.losses import SoftmaxWithLoss, one_hot
from xpnn.layers.conv import Convolution, Pooling, col2im, im2col
from xpnn.layers.naive import AddLayer, MulLayer
from xpnn.layers.embedding import Embedding, EmbeddingDot, SigmoidWithLoss
from xpnn.layers.negative_sampling import NegativeSamplingLoss, UnigramSampler
from xpnn.layers.recurrent import LSTM, RNN, TimeLSTM, TimeRNN
from xpnn.layers.gru import GRU, TimeGRU
from xpnn.layers.bidirectional import TimeBiLSTM
from xpnn.layers.time_distributed import (
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSigmoidWithLoss,
    TimeSoftmaxWithLoss,
)
from xpnn.layers.attention import Attention, AttentionWeight, TimeAttention, WeightSum
# isort: on

__all__ = [
    "LAYERS",
    "LSTM",
    "AddLayer",
    "Affine",
    "Attention",
    "AttentionWeight",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Embedding",
    "EmbeddingDot",
    "Flatten",
    "GRU",
    "Layer",
    "MatMul",
    "MulLayer",
    "NegativeSamplingLoss",
    "Pooling",
    "RNN",
    "Relu",
    "Sigmoid",
    "SigmoidWithLoss",
    "Softmax",
    "SoftmaxWithLoss",
    "TimeAffine",
    "TimeAttention",
    "TimeBiLSTM",
    "TimeDropout",
    "TimeEmbedding",
    "TimeGRU",
    "TimeLSTM",
    "TimeRNN",
    "TimeSigmoidWithLoss",
    "TimeSoftmaxWithLoss",
    "UnigramSampler",
    "WeightSum",
    "backward",
    "col2im",
    "im2col",
    "one_hot",
    "register_layer",
]
