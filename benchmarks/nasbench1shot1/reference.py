"""Settings of the reference one-shot model (SPEC §4) that the rest of the harness names."""

REFERENCE_BN_MOMENTUM = 0.997
"""The reference passes TensorFlow's BatchNorm decay (0.997) as PyTorch's momentum, so running
statistics follow mostly the newest batch. Default for reproduction; 0.003 is the intended value."""
BN_EPS = 1e-5
