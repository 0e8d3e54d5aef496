"""Article 3, example 2: int32 → float32, and float → int truncation (and how to catch it)."""
import numpy as np

import tensorbridge as tb

numpy_array_int = np.array([1, 2, 3, 4], dtype=np.int32)
tensor_float = tb.convert_to_tensor(numpy_array_int, dtype=tb.float32)
print("Tensor:", tensor_float)
print("Tensor Data Type:", tensor_float.dtype)

floats = np.array([1.7, -1.7, 2.5, 300.9])
print("float → int32 truncates toward zero:", tb.cast(floats, tb.int32))
print("float → uint8 saturating:", tb.cast(floats, tb.uint8, casting="saturate"))
try:
    tb.cast(floats, tb.int32, casting="checked")
except ValueError as e:
    print("checked cast refuses:", e)
