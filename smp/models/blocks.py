"""Expected SMP through one block: convolution, ReLU, max pooling (filled in below)."""
