//! File formats: NumPy's `.npy` and `.npz`.
