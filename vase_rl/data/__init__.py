"""Datasets and image transforms (A.5): checksummed loaders of MNIST, Fashion-MNIST and CelebA faces
(``datasets``), inversion, canvas placement and area resizing (``transforms``). The bottom layer."""
