"""The book's networks, one module per family.

* :mod:`xpnn.models.simple`: :class:`SimpleNet` (``simpleNet``, vol. 1 ch. 4);
* :mod:`xpnn.models.two_layer`: :class:`TwoLayerNet` (vol. 1 ch. 4-5) and
  :class:`LayeredTwoLayerNet` (vol. 2 ch. 1);
* :mod:`xpnn.models.layered`: :class:`LayeredNet`, any stack of registered
  layers, and :data:`MODELS`, the classes a saved file may name;
* :mod:`xpnn.models.multilayer`: :class:`MultiLayerNet`,
  :class:`MultiLayerNetExtend` (vol. 1 ch. 6), their arguments checked in
  :mod:`xpnn.models.multilayer_settings`, their weight decay in
  :mod:`xpnn.models.weight_decay`;
* :mod:`xpnn.models.convnet`: :class:`SimpleConvNet`, :class:`DeepConvNet`
  (vol. 1 ch. 7-8), on :mod:`xpnn.models.convnet_base`, their arguments and
  sizes checked in :mod:`xpnn.models.conv_settings`;
* :mod:`xpnn.models.word2vec_simple`: :class:`SimpleCBOW`,
  :class:`SimpleSkipGram` (vol. 2 ch. 3), one-hot words, ``W_in`` listed once;
* :mod:`xpnn.models.word2vec`: :class:`CBOW`, :class:`SkipGram` (vol. 2 ch. 4),
  word ids, negative sampling on the device;
* :mod:`xpnn.models.rnnlm`: :class:`SimpleRnnlm` (vol. 2 ch. 5), :class:`Rnnlm`,
  :class:`BetterRnnlm` (ch. 6, weight tying), and :func:`eval_perplexity`;
* :mod:`xpnn.models.rnnlm_gen`: :class:`RnnlmGen`, :class:`BetterRnnlmGen`
  (ch. 7), the language models that generate text;
* :mod:`xpnn.models.seq2seq`: :class:`Encoder`, :class:`Decoder`,
  :class:`Seq2seq`, :class:`PeekyDecoder`, :class:`PeekySeq2seq` (ch. 7),
  greedy (and batched) ``generate``, :func:`eval_seq2seq` and
  :func:`eval_seq2seq_batch`;
* :mod:`xpnn.models.attention_seq2seq`: :class:`AttentionEncoder`,
  :class:`AttentionDecoder`, :class:`AttentionSeq2seq` (ch. 8);
* :mod:`xpnn.models.weight_init`: the initial weights' scales (He, Xavier)
  and Dropout seeds of those nets; :mod:`xpnn.models.numerical_gradient`:
  their numerical gradient with Dropout masks held.

Parameters are created on the active backend (``xpnn.use_backend``) in its
default float dtype unless ``dtype`` is given, from a seeded
:class:`xpnn.Generator`, so the same seed gives the same initial weights on
every backend. Every model saves and loads with :mod:`xpnn.io`.
"""

from xpnn.models.attention_seq2seq import AttentionDecoder, AttentionEncoder, AttentionSeq2seq
from xpnn.models.convnet import DeepConvNet, SimpleConvNet
from xpnn.models.layered import MODELS, LayeredNet
from xpnn.models.multilayer import MultiLayerNet, MultiLayerNetExtend
from xpnn.models.rnnlm import BetterRnnlm, Rnnlm, SimpleRnnlm
from xpnn.models.rnnlm_gen import BetterRnnlmGen, RnnlmGen
from xpnn.models.seq2seq import (
    Decoder,
    Encoder,
    PeekyDecoder,
    PeekySeq2seq,
    Seq2seq,
    eval_seq2seq,
    eval_seq2seq_batch,
)
from xpnn.models.simple import SimpleNet, simpleNet
from xpnn.models.two_layer import LayeredTwoLayerNet, TwoLayerNet, TwoLayerNetReLU
from xpnn.models.word2vec import CBOW, SkipGram
from xpnn.models.word2vec_simple import SimpleCBOW, SimpleSkipGram
from xpnn.params import ParamDict, ParamList

__all__ = [
    "AttentionDecoder",
    "AttentionEncoder",
    "AttentionSeq2seq",
    "BetterRnnlm",
    "BetterRnnlmGen",
    "CBOW",
    "MODELS",
    "DeepConvNet",
    "Decoder",
    "Encoder",
    "LayeredNet",
    "LayeredTwoLayerNet",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "ParamDict",
    "ParamList",
    "PeekyDecoder",
    "PeekySeq2seq",
    "Rnnlm",
    "RnnlmGen",
    "Seq2seq",
    "SimpleCBOW",
    "SimpleConvNet",
    "SimpleNet",
    "SimpleRnnlm",
    "SimpleSkipGram",
    "SkipGram",
    "TwoLayerNet",
    "TwoLayerNetReLU",
    "eval_seq2seq",
    "eval_seq2seq_batch",
    "simpleNet",
]
