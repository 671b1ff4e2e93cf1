"""Columns of the speed tables that more than one module writes (torch-free)."""

__all__ = ["PROFILE_COLUMNS"]

#: step_profile_<device>.csv: where a training step's time goes, per precision (bench.speed.roofline.profile).
PROFILE_COLUMNS = ["precision", "part", "ms_per_step", "share", "n_models", "device_name", "measured_utc"]
