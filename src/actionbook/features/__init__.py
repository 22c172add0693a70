"""Frozen torchvision backbones and the shared on-disk feature cache."""
