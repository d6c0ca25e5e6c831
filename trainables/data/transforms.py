"""The image transforms of the streamed sources (ImageNet's usual pair); images stay in [0, 1]."""
from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the streamed sources' normalization unless data.mean/std are set
IMAGENET_STD = (0.229, 0.224, 0.225)
CENTRE_CROP_FRACTION = 0.875  # evaluation: resize to size / 0.875, then crop the centre


def image_transforms(image_size: int):
    """(training: random-resized crop + flip, evaluation: resize + centre crop), PIL -> tensor."""
    from torchvision import transforms as T

    train = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor()])
    evaluation = T.Compose([T.Resize(int(round(image_size / CENTRE_CROP_FRACTION))), T.CenterCrop(image_size),
                            T.ToTensor()])
    return train, evaluation
