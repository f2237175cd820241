"""pyengine.nn: modules, parameters and layers (PyTorch's names and semantics).

    Module, Parameter                      the building blocks (parameter registration, state_dict, train/eval)
    Sequential, ModuleList, ModuleDict     containers
    Linear, Embedding, LayerNorm, Dropout, MultiheadAttention, Flatten, Identity
    RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell (RNNBase, RNNCellBase)  recurrent layers, PackedSequence inputs
    Transformer, TransformerEncoder, TransformerDecoder, TransformerEncoderLayer, TransformerDecoderLayer
    ReLU, GELU, Tanh, Sigmoid, SiLU, LeakyReLU, Softmax, LogSoftmax, Softplus, ELU, CELU, SELU, Hardtanh,
    ReLU6, Hardswish, Hardsigmoid, Mish, Softsign, Tanhshrink, LogSigmoid, GLU
    CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCELoss, BCEWithLogitsLoss, SmoothL1Loss, HuberLoss, KLDivLoss,
    MarginRankingLoss, TripletMarginLoss, CosineEmbeddingLoss;  CosineSimilarity, PairwiseDistance
    nn.functional, nn.init, nn.utils (clip_grad_norm_, clip_grad_value_, parameters_to_vector;
                                           nn.utils.rnn: PackedSequence, pack_padded_sequence, pad_sequence, ...)
"""
from . import functional  # noqa: F401
from . import init  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .parameter import Parameter  # noqa: F401
from . import utils  # noqa: F401,E402

__all__ = ["Parameter", "functional", "init", "utils"] + list(_modules_all)
