"""pait: prune pretrained vision encoders on one source task and measure transfer."""

__version__ = "0.1.0"
