"""The training step: the plan (which step runs where), the PyTorch step, the compiled CPU and CUDA kernels
and the math they share, and the CPU's training by pieces."""
