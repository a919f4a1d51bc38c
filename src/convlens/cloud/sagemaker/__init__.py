"""Amazon SageMaker: the training entry point, inference handlers, and (in launcher.py) the job launcher."""
