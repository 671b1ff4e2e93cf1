"""Training on Fashion-MNIST: the data, the batched MLP and its optimizers, the three trainers, find-lr.

Entry points: ``load_fashion_mnist`` (``data``) and ``TrainConfig`` (``config``); neither imports torch.
The trainers sit side by side with one signature, ``(configs, data, *, epochs, ...) -> ChunkResult``:
``batched.train_chunk`` (one stacked model), ``sequential.train_sequential`` (torch.nn, one at a time) and
``keras.train_keras`` (Keras ``model.fit``). ``model`` is the batched MLP, ``optim`` its optimizers.
"""
from .config import TrainConfig
from .data import FashionMNISTError, load_fashion_mnist

__all__ = ["TrainConfig", "load_fashion_mnist", "FashionMNISTError"]
