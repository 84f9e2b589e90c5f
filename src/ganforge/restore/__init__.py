"""Image restoration: super-resolution networks, their pretrained weights, and tiled upscaling."""
