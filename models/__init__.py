"""Sentiment classifiers: offline loading, batched inference, training."""
