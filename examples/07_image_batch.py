"""Article 3, example 3: a batch of three 64×64×3 float32 images."""
import numpy as np

import tensorbridge as tb

batch_size, image_height, image_width, channels = 3, 64, 64, 3
numpy_images = np.random.rand(batch_size, image_height, image_width, channels).astype(np.float32)
image_tensor = tb.convert_to_tensor(numpy_images)
print("Tensor Shape:", image_tensor.shape)
print("Tensor Data Type:", image_tensor.dtype)

# The same batch assembled from separate uint8 images, cast to float32 on the way.
images = [np.random.randint(0, 256, (image_height, image_width, channels), dtype=np.uint8) for _ in range(batch_size)]
batch = tb.stack(images, dtype=tb.float32)
print("Stacked batch:", batch.shape, batch.dtype)
