"""Oracles: the learning rates that the real frameworks produce, obtained by running them."""
