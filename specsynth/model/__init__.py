"""The model: a pitch-conditioned spectrogram VAE and an LSTM latent prior (Keras 3).

Importing this package imports Keras (and so TensorFlow); nothing outside it does.
"""
