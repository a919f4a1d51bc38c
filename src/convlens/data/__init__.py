"""Datasets: the catalog (Fashion-MNIST, MNIST, KMNIST, CIFAR-10, digits, folders), sources (local, Debian,
download), verification, device-resident splits."""

from convlens.data.dataset import DeviceSplits, ImageDataset, images_to_tensor, load_dataset, load_named, to_device
from convlens.data.sources import FASHION_MNIST, DatasetManifest, locate

__all__ = ["FASHION_MNIST", "DatasetManifest", "DeviceSplits", "ImageDataset", "images_to_tensor",
           "load_dataset", "load_named", "locate", "to_device"]
