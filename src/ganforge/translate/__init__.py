"""Image-to-image translation (pix2pix, CycleGAN): training tasks and the pretrained-generator zoo."""
