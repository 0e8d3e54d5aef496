"""Article 1, example 3 / article 3: int32 kept as int32, float64 cast to float32."""
import numpy as np

import tensorbridge as tb

numpy_array_int = np.array([[1, 2], [3, 4]], dtype=np.int32)
numpy_array_float = np.array([[1.1, 2.2], [3.3, 4.4]], dtype=np.float64)

tensor_int = tb.convert_to_tensor(numpy_array_int, dtype=tb.int32)
tensor_float = tb.convert_to_tensor(numpy_array_float, dtype=tb.float32)

print(f"Integer NumPy array:\n{numpy_array_int}")
print(f"Integer tensor:\n{tensor_int}")
print(f"Float NumPy array:\n{numpy_array_float}")
print(f"Float tensor:\n{tensor_float}")

# Article 3: the dtype is inferred when not given.
tensor = tb.convert_to_tensor(numpy_array_int)
print("Tensor:", tensor)
print("Tensor Data Type:", tensor.dtype)
