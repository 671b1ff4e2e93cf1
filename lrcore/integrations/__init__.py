"""Framework integrations, imported explicitly so that ``import lrcore`` never imports a framework.

* ``lrcore.integrations.torch.LrcoreScheduler``: a ``torch.optim.lr_scheduler.LRScheduler`` that
  drives any PyTorch optimizer (learning rate, and momentum / Adam beta1 when the schedule cycles it).
* ``lrcore.integrations.keras.LrcoreSchedule``: a serializable
  ``keras.optimizers.schedules.LearningRateSchedule``.

Reactive control (ReduceLROnPlateau, early stopping) is framework-free: ``lrcore.reactive``.
"""
