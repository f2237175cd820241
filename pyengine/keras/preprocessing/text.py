"""keras.preprocessing.text: the word Tokenizer (``pyengine.preprocessing.Tokenizer``, Keras semantics).

>>> tok = Tokenizer(num_words=10000, oov_token="<unk>")
>>> tok.fit_on_texts(train_texts)
>>> x = pad_sequences(tok.texts_to_sequences(train_texts), maxlen=40)
"""
from ...preprocessing import Tokenizer, text_to_word_sequence, tokenizer_from_json  # noqa: F401

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]
