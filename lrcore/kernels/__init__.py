"""Compiled evaluation of lowered schedules: scalar formulas shared by every backend, CPU kernels."""
