"""Fashion-MNIST: sources (local, Debian, download), IDX verification, device-resident splits."""

from convlens.data.dataset import DeviceSplits, ImageDataset, images_to_tensor, load_dataset, to_device
from convlens.data.sources import FASHION_MNIST, DatasetManifest, locate

__all__ = ["FASHION_MNIST", "DatasetManifest", "DeviceSplits", "ImageDataset", "images_to_tensor",
           "load_dataset", "locate", "to_device"]
