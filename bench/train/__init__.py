"""Training on Fashion-MNIST: the data, the batched MLP and its optimizers, the three trainers, find-lr.

Entry points: ``load_fashion_mnist`` (``data``), ``TrainSpec`` and ``TrainConfig`` (``config``: how models
train, one model) and ``registry.train``; none imports torch. The trainers sit side by side with one signature,
``(configs, data, spec, *, device, progress) -> ChunkResult``, named in ``registry.TRAINERS``:
``batched.train_chunk`` (one stacked model), ``sequential.train_sequential`` (torch.nn, one at a time) and
``keras.train_keras`` (Keras ``model.fit``); ``record`` holds what they share. ``model`` is the batched MLP,
``optim`` its optimizers.
"""
from .config import TrainConfig, TrainSpec
from .data import FashionMNISTError, load_fashion_mnist

__all__ = ["TrainSpec", "TrainConfig", "load_fashion_mnist", "FashionMNISTError"]
