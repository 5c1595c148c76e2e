"""`ezclip export`: the bundle written and verified, its ONNX graphs, and the torch-free ONNX runtime."""
