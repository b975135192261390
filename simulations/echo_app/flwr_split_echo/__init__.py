"""Echo App: the messages of an SL step with empty content, to measure Flower's own floor."""
