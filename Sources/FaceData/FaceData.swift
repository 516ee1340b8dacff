// FaceData: image decoding, the folder-per-identity dataset, identity splits, augmentation and
// the seeded `DataLoader` that turns images into training batches.
//
// Dimension legend (used in every doc comment of the module):
//   N  batch size (samples)           H, W  image height and width (pixels)
//   C  channels (1 grey, 3 RGB)       K     number of identities (classes)
// Tensors are row-major; images are `[C, H, W]` (`FaceImage`), image batches `[N, C, H, W]`.
//
// Value ranges: a decoded `FaceImage` holds samples in [0, 1] (`value / maxval`); a batch tensor
// holds `x·2 − 1` in [−1, 1], the input range of the ArcFace backbones (insightface arcface_torch
// normalizes with mean 0.5, std 0.5).
//
// Data set credit (AT&T / ORL faces, used by the tests): F. Samaria and A. Harter,
// "Parameterisation of a stochastic model for human face identification", 2nd IEEE Workshop on
// Applications of Computer Vision, 1994.
