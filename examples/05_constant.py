"""Article 2, examples 2 and 3: `constant` always copies; int64 → float32."""
import numpy as np

import tensorbridge as tb

numpy_array = np.array([1, 2, 3, 4, 5], dtype=np.float32)
tensor = tb.constant(numpy_array)
print(f"Tensor type: {type(tensor)}")
numpy_array[0] = 10
print(f"Modified tensor: {tensor.numpy()}")  # unchanged

numpy_array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
tensor = tb.constant(numpy_array, dtype=tb.float32)
print(f"Tensor shape: {tensor.shape}")
print(f"Tensor dtype: {tensor.dtype}")
print(f"Tensor data: \n{tensor.numpy()}")
