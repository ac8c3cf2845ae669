package io.rlkernels.backend;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;

/**
 * One implementation of every op. All backends compute the same functions (DESIGN §5) to the
 * tolerances of DESIGN §8. Each op has an allocation-free form writing into tensors the caller
 * provides, and a convenience form that allocates its outputs with {@link #allocate}.
 * Arguments are checked before any kernel runs; bad ones throw {@link IllegalArgumentException}.
 */
public interface Backend extends AutoCloseable {

    BackendKind kind();

    /** One line: the backend and what it runs on ("native: avx512, 2 threads"). */
    String description();

    /** A new tensor where this backend computes fastest (host memory, or device memory for cuda). */
    Tensor allocate(DType dtype, long... shape);

    /** A copy of {@code src} where this backend computes: new host memory, or device memory. */
    default Tensor upload(HostTensor src) {
        Tensor t = allocate(src.dtype(), src.shape());
        src.copyTo((HostTensor) t);
        return t;
    }

    /** Copies {@code src}, a tensor of this backend, into {@code dst} (same dtype and size); waits for it. */
    default void download(Tensor src, HostTensor dst) {
        if (!(src instanceof HostTensor h)) {
            throw Check.fail("src", "a host tensor", src.describe());
        }
        h.copyTo(dst);
    }

    /**
     * Token log-probs forward: writes logp, lse and, when {@code entropy} is not null, the
     * entropy of each row. See {@link LogProbs}.
     */
    void logProbs(LogProbs.Config config, Tensor logits, Tensor targets, Tensor logp, Tensor lse, Tensor entropy);

    /**
     * Token log-probs backward: writes dL/dlogits into {@code gradLogits} (f32, or the logits'
     * own buffer for an in-place backward). See {@link LogProbs#checkBackward}.
     */
    void logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lse, Tensor entropy,
                          Tensor gradLogp, Tensor gradEntropy, Tensor gradLogits);

    /** Allocating forward; {@code withEntropy} chooses whether the entropy is computed. */
    default LogProbs.Result logProbs(LogProbs.Config config, Tensor logits, Tensor targets, boolean withEntropy) {
        LogProbs.Dims d = LogProbs.checkInputs(logits, targets);
        Tensor logp = allocate(DType.F32, d.rows());
        Tensor lse = allocate(DType.F32, d.rows());
        Tensor entropy = withEntropy ? allocate(DType.F32, d.rows()) : null;
        try {
            logProbs(config, logits, targets, logp, lse, entropy);
        } catch (RuntimeException e) {
            new LogProbs.Result(logp, lse, entropy).close();
            throw e;
        }
        return new LogProbs.Result(logp, lse, entropy);
    }

    /** Allocating backward: a new f32 gradient of the logits' shape. */
    default Tensor logProbsBackward(LogProbs.Config config, Tensor logits, Tensor targets, Tensor lse, Tensor entropy,
                                    Tensor gradLogp, Tensor gradEntropy) {
        LogProbs.Dims d = LogProbs.checkInputs(logits, targets);
        Tensor grad = allocate(DType.F32, d.rows(), d.vocab());
        try {
            logProbsBackward(config, logits, targets, lse, entropy, gradLogp, gradEntropy, grad);
        } catch (RuntimeException e) {
            grad.close();
            throw e;
        }
        return grad;
    }

    /** Releases what the backend holds (device context references, staging buffers). Idempotent. */
    @Override
    void close();
}
