"""The model: a contour-conditioned spectrogram VAE and an LSTM latent prior (Keras 3).

Keras (and so TensorFlow) loads only when a network is built, loaded or trained: bundle checks,
settings, the recipe's data and the sample packs import without it.
"""
