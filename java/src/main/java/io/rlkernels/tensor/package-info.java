/**
 * Tensors: dense, contiguous, row-major arrays of one {@link io.rlkernels.tensor.DType} in host
 * memory ({@link io.rlkernels.tensor.HostTensor}, a {@link java.lang.foreign.MemorySegment}: Java
 * arrays, off-heap memory, mapped files) or on a device ({@link io.rlkernels.tensor.DeviceTensor}).
 * A tensor that owns its memory frees it on close; views ({@code reshape}, {@code rows}) hold
 * their tensor's memory until they are closed. Shapes are in elements, checked for overflow.
 */
package io.rlkernels.tensor;
