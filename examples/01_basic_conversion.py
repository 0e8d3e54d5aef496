"""Article 1, example 1: an int64 2×3 array converted with dtype float32."""
import numpy as np

import tensorbridge as tb

numpy_array = np.array([[1, 2, 3], [4, 5, 6]])
tensor = tb.convert_to_tensor(numpy_array, dtype=tb.float32)

print(f"NumPy array:\n{numpy_array}")
print(f"tensorbridge tensor:\n{tensor}")
print(f"tensorbridge tensor data type: {tensor.dtype}")
