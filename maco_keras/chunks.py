"""One replica's share of a step's crops, `crop_chunk` at a time: their scores and the images' gradient.

A step cuts K crops of each of the N images; each replica of a strategy (see `steps`)
takes a slice of them. `CropChunks` runs that slice through the model `crop_chunk` crops
per image at a time, so that one chunk's activations are alive at once: that bounds the
memory of a step, whatever K.

Each chunk keeps only its crops' gradient (a crop's worth of floats, not the model's
activations). Once every chunk has run, those gradients go back to the images in one
call (`augmentation.crop_gradient`), each image's crops summed in crop order. That is the
same call on the same values whatever the chunk size, so an image's gradient has the same
bits with or without chunks; adding up per-chunk image gradients would group the sums
differently, and change the last bits.
"""

import tensorflow as tf

from . import augmentation as augmentation_lib


class CropChunks:
    """Scores and image gradient of crops `first .. first + crops - 1` of every image, `chunk` at a time.

    Args:
        objective: a `CompiledObjective`.
        augmentation: an `Augmentation`.
        num_crops: K, the step's crops per image: each crop weighs 1 / K in the scores.
        crops: the crops per image of this slice.
        chunk: crops per image run through the model at once; divides `crops`.
        gather: cut crops with gathers (XLA) rather than TF's CropAndResize kernel.
        model_dtype: the model's compute dtype (crops are cast to it).
    """

    def __init__(self, objective, augmentation, num_crops, crops, chunk, gather, model_dtype):
        self.objective = objective
        self.augmentation = augmentation
        self.num_crops = num_crops
        self.chunk = chunk
        self.num_chunks = crops // chunk
        self.gather = gather
        self.model_dtype = model_dtype

    def _chunk_gradient(self, images, boxes, noise_keys, first, masks, multipliers, uniform, gaussian):
        """One chunk: its crops' scores (N,) and the gradient of the scores at its crops (as cut, before `finish`)."""
        cut = augmentation_lib.cut_crops(images, boxes, first, self.chunk, self.objective.input_shape[:2],
                                         self.augmentation, gather=self.gather)
        with tf.GradientTape() as tape:
            tape.watch(cut)
            # The noise is additive: it changes the crops, not their gradient.
            crops = augmentation_lib.finish(cut, images.shape[0], first, self.chunk, self.augmentation, noise_keys,
                                            uniform, gaussian)
            outputs = self.objective.model(tf.cast(crops, self.model_dtype))
            if not isinstance(outputs, (list, tuple)):
                outputs = [outputs]
            loss, values = self.objective.scores(list(outputs), masks, multipliers, self.chunk, self.num_crops)
            total = tf.reduce_sum(loss)
        return values, tape.gradient(total, cut)

    def __call__(self, images, boxes, noise_keys, first, masks, multipliers, uniform, gaussian):
        """Scores and image gradient of this slice of the step's crops.

        Args:
            images, boxes, noise_keys: the step's draws (`augmentation.draw`).
            first: scalar int32 tensor, the slice's first crop index.
            masks, multipliers: the objective's values.
            uniform, gaussian: this step's noise.

        Returns:
            (scores (N,): the slice's share of the mean over the K crops, in the units' own
            values; image gradient (N, H, W, C)).
        """
        args = (masks, multipliers, uniform, gaussian)
        if self.num_chunks == 1:
            scores, crop_gradients = self._chunk_gradient(images, boxes, noise_keys, first, *args)
        else:
            def body(index, gradients, scores):
                values, gradient = self._chunk_gradient(images, boxes, noise_keys, first + index * self.chunk, *args)
                return index + 1, gradients.write(index, gradient), scores + values

            gradients = tf.TensorArray(tf.float32, size=self.num_chunks)
            # One chunk at a time (TF would otherwise overlap up to 10): one chunk's activations are alive at once.
            _, gradients, scores = tf.while_loop(
                lambda index, *_: index < self.num_chunks, body,
                (tf.constant(0), gradients, tf.zeros((images.shape[0],))), parallel_iterations=1)
            stacked = gradients.stack()  # (chunks, chunk * N, h, w, C): chunk after chunk is crop order
            crop_gradients = tf.reshape(stacked, (-1, *stacked.shape[2:]))
        crops = self.num_chunks * self.chunk
        boxes = augmentation_lib.crop_slice(boxes, images.shape[0], first, crops)
        image_gradient = augmentation_lib.crop_gradient(crop_gradients, boxes, crops, images.shape, images.dtype,
                                                        gather=self.gather)
        return scores, image_gradient
