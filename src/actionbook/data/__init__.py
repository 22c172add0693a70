"""The data layer: the generated benchmark, dataset readers, video decoding, clip/segment
sampling, crops and optical flow. Every chapter reads videos through these modules."""
