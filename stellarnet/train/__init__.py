"""Model factory and the recorded training loop: the recorders, optimizers and backprop
written out, and the engine that runs their epochs."""
