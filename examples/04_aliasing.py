"""Article 2, example 1, done right: copy vs alias.

The article claims `convert_to_tensor` aliases the array; TensorFlow 2.21 copies, and so does
tensorbridge by default. `copy=False` gives a real zero-copy view that keeps the array alive,
so even `del` + garbage collection cannot free memory the tensor still reads.
"""
import gc

import numpy as np

import tensorbridge as tb

numpy_array = np.array([1, 2, 3, 4, 5])
tensor = tb.convert_to_tensor(numpy_array)
print(f"Tensor type: {type(tensor)}")
numpy_array[0] = 10
print(f"Default (copy): tensor after mutating the array: {tensor.numpy()}  is_view={tensor.is_view}")

numpy_array = np.array([1, 2, 3, 4, 5])
view = tb.convert_to_tensor(numpy_array, copy=False)
numpy_array[0] = 10
print(f"copy=False (view): tensor after mutating the array: {view.numpy()}  is_view={view.is_view}")
print(f"shares memory: {np.shares_memory(view.numpy(), numpy_array)}")
del numpy_array
gc.collect()
print(f"after del + gc.collect(): {view.numpy()} (still valid: the tensor keeps the array alive)")
