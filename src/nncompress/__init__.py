"""nncompress: compress trained neural-network files into truly smaller ones."""

__version__ = "0.1.0"
