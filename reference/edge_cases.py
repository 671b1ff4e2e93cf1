"""The pinned conformance cases: edge cases users hit, run on every suite run besides the random ones
(data only)."""
from __future__ import annotations

from .case import Case

EDGE_CASES: list[Case] = [
    Case("torch", "StepLR", dict(lr=0.1, step_size=1, gamma=0.5), 12),
    Case("torch", "MultiStepLR", dict(lr=0.1, milestones=[5, 5, 2, 9], gamma=0.5), 15),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=1), 6),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=7, eta_min=0.3), 40),
    Case("torch", "CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=1, T_mult=2, eta_min=0.001), 40),
    Case("torch", "CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=3, T_mult=3), 130),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=1, mode="exp_range", gamma=0.97), 40),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=2.5, step_size_down=1.5,
                                   mode="triangular2"), 40),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=40, three_phase=True, pct_start=0.3), 40),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=37, three_phase=True, anneal_strategy="linear"), 37),
    Case("torch", "OneCycleLR", dict(max_lr=0.3, total_steps=40, three_phase=True), 40, "momentum", "adam"),
    Case("torch", "OneCycleLR", dict(max_lr=1.07e-4, total_steps=221, pct_start=0.5976, three_phase=True), 221),
    Case("torch", "OneCycleLR", dict(max_lr=1.07e-4, total_steps=221, pct_start=0.5976, three_phase=True), 221,
         "momentum", "sgd"),
    Case("torch", "OneCycleLR", dict(max_lr=0.1, total_steps=10, pct_start=0.05, anneal_strategy="linear"), 10),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.95), 30,
         "momentum", "adam"),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[5, 15], schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.1, total_iters=5)],
        ["CosineAnnealingWarmRestarts", dict(lr=0.1, T_0=4, T_mult=2)],
        ["MultiplicativeLR", dict(lr=0.1, lr_lambda="0.95")]]), 40),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6, 6], schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["StepLR", dict(lr=0.1, step_size=2)],
        ["MultiplicativeLR", dict(lr=0.1, lr_lambda="1-0.5/(k+10)")]]), 30),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.1, total_iters=5)], ["CosineAnnealingLR", dict(lr=0.1, T_max=20)]]), 21),
    Case("torch", "LambdaLR", dict(lr=0.1, lr_lambda="cos50"), 80),
    Case("torch", "ChainedScheduler", dict(lr=1.0, schedulers=[  # PyTorch's residue on a value 6e-8 of the peak
        ["StepLR", dict(lr=1.0, step_size=1, gamma=1.0)],
        ["LinearLR", dict(lr=1.0, start_factor=0.10992733981159351, end_factor=5.960464477539063e-08, total_iters=1)]]), 2),
    # configurations lrcore used to refuse (PyTorch / Keras accept them and give defined values)
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)], ["ExponentialLR", dict(lr=0.1, gamma=0.9)],
        ["CosineAnnealingLR", dict(lr=0.1, T_max=7, eta_min=0.001)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[  # CyclicLR's first value: the initial_lr left
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40, three_phase=True)],
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40, three_phase=True)],
        ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, base_momentum=0.5, max_momentum=0.6)]]), 40,
         "momentum", "adam"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[  # the last OneCycleLR's rates for both
        ["OneCycleLR", dict(max_lr=0.5, total_steps=40)],
        ["OneCycleLR", dict(max_lr=0.2, total_steps=30, pct_start=0.5, base_momentum=0.6, max_momentum=0.7)]]), 30,
         "momentum", "sgd"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["StepLR", dict(lr=0.1, step_size=5, gamma=0.5)], ["OneCycleLR", dict(max_lr=0.5, total_steps=40)],
        ["CosineAnnealingLR", dict(lr=0.1, T_max=7)]]), 40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.95)], ["SequentialLR", dict(lr=0.1, milestones=[5], schedulers=[
            ["LinearLR", dict(lr=0.1, start_factor=0.2, total_iters=5)], ["CosineAnnealingLR", dict(lr=0.1, T_max=10)]])]]),
         40),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["CyclicLR", dict(base_lr=0.02, max_lr=0.05, step_size_up=4, base_momentum=0.3, max_momentum=0.4)],
        ["SequentialLR", dict(lr=0.1, milestones=[0, 5], schedulers=[
            ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)],
            ["OneCycleLR", dict(max_lr=0.5, total_steps=40)]])]]), 30, "momentum", "sgd"),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ConstantLR", dict(lr=0.1, factor=0.0, total_iters=8)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3)]]),
         8),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6], schedulers=[
        ["OneCycleLR", dict(max_lr=0.5, total_steps=20)], ["CosineAnnealingLR", dict(lr=0.1, T_max=10)]]), 30),
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[6], schedulers=[
        ["LinearLR", dict(lr=0.1, start_factor=0.5, total_iters=6)], ["CyclicLR", dict(base_lr=0.01, max_lr=0.1,
                                                                                     step_size_up=3)]]), 30,
         "momentum", "sgd"),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=1.01), 600),
    Case("torch", "CyclicLR", dict(base_lr=0.1, max_lr=0.01, step_size_up=2.5, mode="triangular2"), 40),
    Case("torch", "StepLR", dict(lr=0.1, step_size=3, gamma=1.5), 30),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=2.5, eta_min=0.01), 60),
    Case("torch", "CosineAnnealingLR", dict(lr=0.1, T_max=28.9999, eta_min=0.02), 150),  # PyTorch's rounding
    Case("torch", "SequentialLR", dict(lr=0.1, milestones=[0, 13], schedulers=[  # base: OneCycleLR's initial lr
        ["OneCycleLR", dict(max_lr=0.46, total_steps=19, div_factor=1.18, three_phase=True)],
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["CosineAnnealingLR", dict(lr=0.1, T_max=11.833)]]), 50),
    Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.97)], ["CosineAnnealingLR", dict(lr=0.1, T_max=7.3, eta_min=0.01)]]), 80),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=1.5,
                                   scale_fn="0.9**x", scale_mode="iterations"), 40, "momentum", "adam"),
    Case("torch", "CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn="1/x"), 40),
    Case("torch", "LinearLR", dict(lr=0.1, start_factor=0.3, total_iters=-1), 10),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[10, 44, 13, 52], values=[0.1, 0.2, 0.3, 0.4, 0.5]), 60),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[-0.5, 3.7, 3.2], values=[0.1, 0.2, 0.3, 0.4]), 10),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.2, decay_steps=7.5, warmup_target=0.1, warmup_steps=3.7,
                                      alpha=0.2), 20),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=10, warmup_target=0.1, warmup_steps=-2.5), 15),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=20, alpha=2.0), 30),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=10, alpha=0.1, t_mul=3.0,
                                              m_mul=4.0), 60),
    Case("keras", "ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=3, decay_rate=1.5), 30),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=1.0, decay_steps=42.031, power=0.5), 43),  # float32
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0), 160),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=1, t_mul=1.0), 10),
    Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=4.5, t_mul=1.5, m_mul=0.7,
                                              alpha=0.1), 120),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=10, power=2.0, cycle=True), 45),
    Case("keras", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1, cycle=True), 5),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.01, decay_steps=10, warmup_target=0.001,
                                      warmup_steps=30), 60),
    Case("keras", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=1, warmup_target=0.1, warmup_steps=1), 5),
    Case("keras", "PiecewiseConstantDecay", dict(boundaries=[0, 3, 3, 8], values=[0.5, 0.4, 0.3, 0.2, 0.1]), 12),
    Case("keras", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=55, decay_rate=0.1,
                                           staircase=True), 120),
    Case("keras", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5, staircase=True), 10),
    # transformers: the cosine rises again after T; hard-restart boundaries where (c * p) % 1 rounds below 1
    Case("hf", "get_cosine_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=10, num_training_steps=50), 120),
    Case("hf", "get_cosine_with_hard_restarts_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=0,
                                                                          num_training_steps=49, num_cycles=49), 60),
    Case("hf", "get_polynomial_decay_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=5, num_training_steps=20,
                                                                 power=0.0), 30),
    Case("hf", "get_polynomial_decay_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=5, num_training_steps=5), 10),
    Case("hf", "get_inverse_sqrt_schedule", dict(lr=0.1, num_warmup_steps=0), 300),
    Case("hf", "get_wsd_schedule", dict(lr=0.1, num_warmup_steps=7, num_decay_steps=9, num_stable_steps=5,
                                        warmup_type="1-sqrt", decay_type="1-sqrt", min_lr_ratio=0.1), 30),
    Case("hf", "get_scheduler", dict(name="cosine_with_min_lr", lr=0.1, num_warmup_steps=5, num_training_steps=20), 5),
    # timm: cycles found with a float log; k-decay; warmup without prefix; a shrinking cycle_mul runs out
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=10, cycle_mul=2.0, cycle_limit=3, cycle_decay=0.5,
                                           warmup_t=4, lr_min=1e-3), 90),
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=20, k_decay=2.0, warmup_t=5, warmup_prefix=True), 40),
    Case("timm", "PolyLRScheduler", dict(lr=0.1, t_initial=10, cycle_mul=0.5, cycle_limit=100), 30),
    Case("timm", "PolyLRScheduler", dict(lr=0.0011916076368523152, t_initial=42, lr_min=0.0003956203356268461,  # past
         cycle_mul=0.623, cycle_limit=3, warmup_t=18, warmup_lr_init=0.0008125620328565709), 165),  # cycle_limit too
    Case("timm", "TanhLRScheduler", dict(lr=0.1, t_initial=30, warmup_t=5, t_in_epochs=False), 40),
    Case("timm", "StepLRScheduler", dict(lr=0.1, decay_t=2.5, decay_rate=0.5, warmup_t=3, warmup_prefix=False), 30),
    Case("timm", "MultiStepLRScheduler", dict(lr=0.1, decay_t=[30, 10, 20], decay_rate=0.5), 40),
    Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=10, lr_min=0.3, cycle_limit=2), 30),
    # optax: clipped decay, colliding one-cycle boundaries, what optax refuses
    Case("optax", "exponential_decay", dict(init_value=0.1, transition_steps=3, decay_rate=0.5, transition_begin=5,
                                            end_value=0.01), 40),
    Case("optax", "exponential_decay", dict(init_value=0.1, transition_steps=2.5, decay_rate=1.3, staircase=True,
                                            end_value=0.5), 40),
    Case("optax", "linear_onecycle_schedule", dict(transition_steps=2, peak_value=0.1), 5),
    Case("optax", "warmup_cosine_decay_schedule", dict(init_value=0.0, peak_value=0.1, warmup_steps=10,
                                                       decay_steps=10), 5),
    Case("optax", "cosine_decay_schedule", dict(init_value=0.1, decay_steps=0), 5),
    Case("optax", "join_schedules", dict(schedules=[
        ["linear_schedule", dict(init_value=0.0, end_value=0.1, transition_steps=5)],
        ["join_schedules", dict(schedules=[["constant_schedule", dict(value=0.1)],
                                           ["cosine_decay_schedule", dict(init_value=0.1, decay_steps=20)]],
                                boundaries=[3])]], boundaries=[5]), 40),
]
