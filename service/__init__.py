"""alexnet-jobs: the API side. Never imports torch, so it starts fast and never touches CUDA."""
