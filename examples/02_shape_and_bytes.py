"""Article 1, example 2: shape and byte size of a 100×100 float64 array.

`tensor.size * tensor.dtype.size` fails in TensorFlow (no `.size` on tensors); it works here.
"""
import numpy as np

import tensorbridge as tb

numpy_array = np.random.rand(100, 100)
tensor = tb.convert_to_tensor(numpy_array)

print(f"tensorbridge tensor shape: {tensor.shape}")
print(f"tensorbridge tensor size in bytes: {tensor.size * tensor.dtype.size}")
