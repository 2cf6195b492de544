"""`edgekit compress`: smaller networks (pruning, low-rank factorization, depth), recovered by distillation."""
