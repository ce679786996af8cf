from .data import fashion_mnist, image_folder, load_dataset
from .train import train
from .watch import Watcher, watch

__all__ = ["Watcher", "fashion_mnist", "image_folder", "load_dataset", "train", "watch"]
