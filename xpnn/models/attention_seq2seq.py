"""Vol. 2 ch. 8's ``AttentionEncoder``, ``AttentionDecoder`` and ``AttentionSeq2seq``.

As the book's ``ch08/attention_seq2seq.py``: the encoder (:class:`~xpnn.models.
seq2seq.Encoder`'s layers) returns all its hidden states ``hs`` ``(N, T_enc, H)``,
not only the last; the decoder starts its LSTM (``stateful=True``) from
``hs[:, -1]`` (``c`` zeros), attends over ``hs`` at every step
(:class:`~xpnn.layers.TimeAttention`: a softmax over the T_enc steps of the dot
products with the step's LSTM output, and the context ``c`` their weighted
sum) and scores the concatenation ``[c, dec_hs]`` ``(N, T_dec, 2H)``, the
context first, with a ``TimeAffine`` ``(2H, V)``. ``AttentionSeq2seq`` is
:class:`~xpnn.models.seq2seq.Seq2seq` with these two parts: the same loss
(the answer ``ts[:, :-1]`` fed, ``ts[:, 1:]`` scored), checks, ``generate``,
saving (``encoder.embed_W``... ``decoder.affine_b``, config ``{vocab_size,
wordvec_size, hidden_size}``, registered in ``MODELS``) and ``save_params``
(``AttentionSeq2seq.pkl``, the book's order).

**Weights.** The book's recipe from xpnn's generator (``seed=``), the
encoder's then the decoder's: ``randn / 100`` embeddings, ``randn /
sqrt(fan_in)`` for ``lstm_Wx`` (D), ``lstm_Wh`` (H) and ``affine_W`` (2H),
zero biases; float32 unless ``dtype``. ``params``: ``[embed_W, lstm_Wx,
lstm_Wh, lstm_b]`` then ``[embed_W, lstm_Wx, lstm_Wh, lstm_b, affine_W,
affine_b]`` (the attention has none).

**Generation** is greedy and stays on the device, as ``Seq2seq``'s: each
step's ``xp.argmax`` of the ``(N, 1, V)`` scores is the next step's ids, the
ids of all steps are read to the host once. After ``generate`` (as after
``forward``) ``decoder.attention.attention_weights`` is a list of one ``(N,
T_enc)`` array per decoded step, each row summing to 1 (the book's loop
keeps only the last step's): what ``visualize_attention.py`` draws.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import device_of, get_namespace
from xpnn.layers.attention import TimeAttention
from xpnn.layers.recurrent import TimeLSTM
from xpnn.layers.time_distributed import TimeAffine, TimeEmbedding
from xpnn.models.encoder_decoder import Encoder, _as_lists, _Part, _sample_size, _start_id
from xpnn.models.layered import MODELS
from xpnn.models.seq2seq import Seq2seq

__all__ = ["AttentionDecoder", "AttentionEncoder", "AttentionSeq2seq"]


# ---------------------------------------------------------------- AttentionEncoder


class AttentionEncoder(Encoder):
    """The book's ``AttentionEncoder``: :class:`Encoder` returning all the LSTM's ``hs``.

    Args: as :class:`~xpnn.models.seq2seq.Encoder`.

    Attributes:
        embed, lstm, params, grads: as :class:`~xpnn.models.seq2seq.Encoder`'s.
        hs: The LSTM's outputs ``(N, T, H)`` of the last forward.
    """

    def forward(self, xs: Any) -> Any:
        """``hs`` ``(N, T, H)``: the LSTM's outputs for ids ``xs`` ``(N, T)``."""
        xs = self.embed.forward(xs)
        hs = self.lstm.forward(xs)
        self.hs = hs
        return hs

    def backward(self, dhs: Any) -> Any:
        """Fills ``grads`` from ``dhs`` ``(N, T, H)``, the gradient of ``hs``; None (ids)."""
        dout = self.lstm.backward(dhs)
        dout = self.embed.backward(dout)
        return dout


# ---------------------------------------------------------------- AttentionDecoder


class AttentionDecoder(_Part):
    """The book's ``AttentionDecoder``: embedding, LSTM, attention over ``enc_hs``, affine.

    The LSTM starts from ``enc_hs[:, -1]``; the affine scores ``[c, dec_hs]``
    ``(N, T, 2H)``, the attention's context ``c`` first, as the book's
    ``np.concatenate((c, dec_hs), axis=2)``.

    Args: as :class:`~xpnn.models.seq2seq.Encoder`.

    Attributes:
        embed, lstm, attention, affine: TimeEmbedding, TimeLSTM
            (``stateful=True``), TimeAttention, TimeAffine ``(2H, V)``.
        params: ``[embed_W, lstm_Wx, lstm_Wh, lstm_b, affine_W, affine_b]``;
            grads: theirs.
    """

    @classmethod
    def _shapes(cls, V: int, D: int, H: int) -> dict[str, tuple[int, ...]]:
        return {
            "embed_W": (V, D),
            "lstm_Wx": (D, 4 * H),
            "lstm_Wh": (H, 4 * H),
            "lstm_b": (4 * H,),
            "affine_W": (2 * H, V),  # [c, dec_hs]
            "affine_b": (V,),
        }

    def _build(self, a: dict[str, Any]) -> None:
        self.arrays = a
        self.embed = TimeEmbedding(a["embed_W"])
        self.lstm = TimeLSTM(a["lstm_Wx"], a["lstm_Wh"], a["lstm_b"], stateful=True)
        self.attention = TimeAttention()
        self.affine = TimeAffine(a["affine_W"], a["affine_b"])
        layers = [self.embed, self.lstm, self.attention, self.affine]

        self.params: list[Any] = []
        self.grads: list[Any] = []
        for layer in layers:
            self.params += layer.params
            self.grads += layer.grads

    def forward(self, xs: Any, enc_hs: Any) -> Any:
        """Scores ``(N, T, V)`` of ids ``xs`` ``(N, T)``, attending over ``enc_hs`` ``(N, T_e, H)``.

        The LSTM starts from ``enc_hs[:, -1]`` (its ``c`` from zeros); T_e is T_enc.
        """
        xp = get_namespace(enc_hs)
        h = enc_hs[:, -1, :]
        self.lstm.set_state(h)

        out = self.embed.forward(xs)
        dec_hs = self.lstm.forward(out)
        c = self.attention.forward(enc_hs, dec_hs)
        out = xp.concat((c, dec_hs), axis=2)
        score = self.affine.forward(out)

        return score

    def backward(self, dscore: Any) -> Any:
        """Fills ``grads``; returns ``denc_hs`` ``(N, T_enc, H)``: the attention's and ``h``'s."""
        xp = get_namespace(dscore)
        dout = self.affine.backward(dscore)
        N, _, H2 = dout.shape
        H = H2 // 2

        dc, ddec_hs0 = dout[:, :, :H], dout[:, :, H:]
        denc_hs, ddec_hs1 = self.attention.backward(dc)
        ddec_hs = ddec_hs0 + ddec_hs1
        dout = self.lstm.backward(ddec_hs)
        dh = self.lstm.dh
        # The book's denc_hs[:, -1] += dh, without writing into an array.
        T_enc = denc_hs.shape[1]
        last = denc_hs[:, T_enc - 1 :, :] + xp.reshape(dh, (N, 1, H))
        denc_hs = xp.concat((denc_hs[:, : T_enc - 1, :], last), axis=1)
        self.embed.backward(dout)

        return denc_hs

    def _step(self, x: Any, enc_hs: Any) -> Any:
        """Scores ``(N, 1, V)`` of one step's ids ``x`` ``(N, 1)``; the state carries on."""
        xp = get_namespace(enc_hs)
        out = self.embed.forward(x)
        dec_hs = self.lstm.forward(out)
        c = self.attention.forward(enc_hs, dec_hs)
        out = xp.concat((c, dec_hs), axis=2)
        return self.affine.forward(out)

    def generate_ids(self, enc_hs: Any, start_id: int, sample_size: int) -> Any:
        """The greedy ids ``(N, sample_size)`` on the device, each step's argmax fed back.

        Leaves every step's attention (``attention.layers``, and its weights
        ``(N, T_enc)`` in ``attention.attention_weights``), as one forward
        pass over the decoded steps would.
        """
        xp = get_namespace(enc_hs)
        N = enc_hs.shape[0]
        self.lstm.set_state(enc_hs[:, -1, :])
        # The start ids, made on the device (int64, as argmax gives them).
        x = xp.full((N, 1), start_id, dtype=xp.int64, device=device_of(enc_hs))
        sampled, layers, weights = [], [], []
        for _ in range(sample_size):
            score = self._step(x, enc_hs)
            layers += self.attention.layers
            weights += self.attention.attention_weights
            x = xp.argmax(score, axis=2)  # (N, 1): the next step's input, never read here
            sampled.append(x)
        self.attention.layers, self.attention.attention_weights = layers, weights
        return xp.concat(sampled, axis=1)

    def generate(self, enc_hs: Any, start_id: Any, sample_size: Any) -> list:
        """The book's greedy generation: ``sample_size`` ids after ``start_id``.

        Returns the book's flat list of ints for ``enc_hs`` ``(1, T_enc, H)``,
        a list of N lists for ``(N, T_enc, H)``; read from the device once.
        """
        V = int(self.embed.params[0].shape[0])
        ids = self.generate_ids(enc_hs, _start_id(start_id, V), _sample_size(sample_size))
        return _as_lists(ids)


# ---------------------------------------------------------------- AttentionSeq2seq


class AttentionSeq2seq(Seq2seq):
    """The book's ``AttentionSeq2seq`` (vol. 2, 8.2): Seq2seq with attention.

    :class:`AttentionEncoder`, :class:`AttentionDecoder`, TimeSoftmaxWithLoss;
    ``forward``, ``backward``, ``generate``, ``generate_ids``, saving and
    ``save_params``/``load_params`` are :class:`~xpnn.models.seq2seq.Seq2seq`'s.

    Args:
        vocab_size: V; wordvec_size: D; hidden_size: H (positive ints).
        seed: Seed of the initial weights (None: the global seed, else fresh).
        dtype: Float dtype of the weights (default the backend's, float32).

    Attributes:
        encoder, decoder, softmax: as the book's.
        params: ``encoder.params + decoder.params`` (10 arrays), a checked
            ParamList (assigning copies the values into the layers' arrays);
        grads: theirs, in that order.
    """

    _encoder: Any = AttentionEncoder  # its arrays are Encoder's
    _decoder: Any = AttentionDecoder


MODELS["AttentionSeq2seq"] = AttentionSeq2seq
