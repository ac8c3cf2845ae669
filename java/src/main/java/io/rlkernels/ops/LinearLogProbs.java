package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.tensor.Tensor;

/**
 * Token log-probs straight from hidden states and the LM head (ARCHITECTURE §5.5): logits z = H W^T
 * for hidden states H [N, d] and head weight W [V, d], never stored whole. The outputs and their
 * precision are those of {@link LogProbs} applied to the logits the backend's matrix product
 * forms (f32 accumulation; f64 in the reference), so the log-probs contract holds against those
 * logits, and the logits themselves differ from exact H W^T by the product's rounding (at most
 * about d 2^-24 sum_k |H_ik W_vk|).
 *
 * <pre>
 *   forward:   z_i = W H_i,   logp_i, lse_i, entropy_i, (m_i, ln s_i)   as LogProbs of row z_i
 *   backward:  dz_i = LogProbs' backward of row z_i from g_i = dL/dlogp_i and h_i = dL/dentropy_i
 *              dH_i = sum_v dz_iv W_v          (written)
 *              dW_v += sum_i dz_iv H_i         (accumulated: micro-batches add into one gradient)
 * </pre>
 *
 * <p>How it runs: over chunks of token rows, each row whole — the logits of at most
 * {@link Config#chunkRows} rows at a time in a workspace of {@link Config#workspaceBytes}, the
 * only memory beyond the caller's tensors (nothing of size N x V is ever allocated). A chunk is
 * one matrix product into the workspace, the log-probs kernels on it, and for the backward, in
 * place, the two gradient products. The backward recomputes each chunk's logits (bitwise the
 * forward's: the same product on the same rows) and takes the forward's (m, ln s). Rows are
 * whole in every chunk, so every row is exactly as the log-probs op computes it from its logits —
 * near-certain tokens included — whatever the chunking. The logits themselves are the matrix
 * product's: bitwise repeatable for the same shapes and threads, but a BLAS may round a row by an
 * ulp differently in another chunk or at another thread count (see {@code Backend.matmul}). The
 * native backend, where a chunk of whole rows would hold fewer than 512 rows, tiles the vocabulary
 * too and merges a row's tiles in f64 (ARCHITECTURE §5.5): the same contract, not the same bits.
 *
 * <p>{@code hidden} and {@code weight} are f32, bf16 or f16, independently (multiplied as their
 * exact f32 values); targets i32 or i64 with the ignore index as in {@link LogProbs}; every output
 * and gradient is f32. Shapes, dtypes, target ids and the policy-loss inputs are checked before
 * anything runs. A non-finite hidden state or weight makes NaN logits, and the rows they reach
 * are NaN as {@link LogProbs} says; the fused loss, whose log-probs must be finite, then refuses
 * the call when it reaches the chunk, after the chunks before it have added into gradWeight. The fused form with the policy loss, {@code Backend.linearPolicyLoss},
 * takes {@link LossInputs}.
 */
public final class LinearLogProbs {
    private LinearLogProbs() {}

    /** The default workspace: 256 MiB, 441 rows of a 151,936-token vocabulary. */
    public static final long DEFAULT_WORKSPACE_BYTES = 256L << 20;

    /**
     * The log-probs options and the workspace the caller allows: the f32 logits of
     * {@code floor(workspaceBytes / (4 V))} rows (at least one: a workspace below 4 V bytes is
     * refused when the call learns V), capped by {@code maxChunkRows} when it is positive.
     */
    public record Config(LogProbs.Config logProbs, long workspaceBytes, long maxChunkRows) {
        /** Checks every component, refusing a bad one by name (the expected and the found value). */
        public Config {
            if (logProbs == null) {
                throw Check.fail("logProbs", "a LogProbs.Config", "null");
            }
            if (workspaceBytes < 4) {
                throw Check.fail("workspaceBytes", "at least 4 (one f32 logit)", workspaceBytes);
            }
            if (maxChunkRows < 0) {
                throw Check.fail("maxChunkRows", "0 (no cap) or a positive row count", maxChunkRows);
            }
        }

        /** Temperature 1, ignore index -100, a workspace of 256 MiB of logits at a time. */
        public static Config defaults() {
            return new Config(LogProbs.Config.defaults(), DEFAULT_WORKSPACE_BYTES, 0);
        }

        /** The same with other log-probs options (temperature, ignore index). */
        public Config withLogProbs(LogProbs.Config c) {
            return new Config(c, workspaceBytes, maxChunkRows);
        }

        /** The same with another bound on the logits held at a time. */
        public Config withWorkspaceBytes(long bytes) {
            return new Config(logProbs, bytes, maxChunkRows);
        }

        /** Caps the rows per chunk (the command line's {@code chunk}); 0: no cap. */
        public Config withMaxChunkRows(long rows) {
            return new Config(logProbs, workspaceBytes, rows);
        }

        /** The token rows one chunk holds for a vocabulary of {@code vocab}, at most {@code rows}. */
        public long chunkRows(long vocab, long rows) {
            long fit = workspaceBytes / (4 * Math.max(1, vocab));
            if (fit < 1) {
                throw Check.fail("workspaceBytes", "at least 4 V = " + 4 * vocab + " bytes (the f32 logits of one row)",
                        workspaceBytes);
            }
            if (maxChunkRows > 0) {
                fit = Math.min(fit, maxChunkRows);
            }
            return Math.max(1, Math.min(fit, rows));
        }
    }

    /** Rows N, hidden size d and vocabulary V of a checked call. */
    public record Dims(long rows, long hidden, long vocab) {}

    /**
     * The fused loss form's inputs: hidden [N, d], weight [V, d], targets [N], and the policy-loss
     * inputs other than logp and entropy, which the call computes ({@link PolicyLoss.Inputs}: old
     * logp, advantages and mask [N], the sequences when the loss needs them, the reference logp
     * for a KL term, the rollout logp for the rollout correction).
     */
    public record LossInputs(Tensor hidden, Tensor weight, Tensor targets, Tensor oldLogp, Tensor advantages, Tensor mask,
                             SequenceLayout sequences, Tensor refLogp, Tensor rolloutLogp) {
        /** Token-level inputs without sequences, reference or rollout log-probs. */
        public LossInputs(Tensor hidden, Tensor weight, Tensor targets, Tensor oldLogp, Tensor advantages, Tensor mask) {
            this(hidden, weight, targets, oldLogp, advantages, mask, null, null, null);
        }

        /** Token-level inputs with sequences (the reference and rollout log-probs absent). */
        public LossInputs(Tensor hidden, Tensor weight, Tensor targets, Tensor oldLogp, Tensor advantages, Tensor mask,
                          SequenceLayout sequences, Tensor refLogp) {
            this(hidden, weight, targets, oldLogp, advantages, mask, sequences, refLogp, null);
        }

        /** The same with the sequences (for sequence ratios and seq-* aggregations). */
        public LossInputs withSequences(SequenceLayout s) {
            return new LossInputs(hidden, weight, targets, oldLogp, advantages, mask, s, refLogp, rolloutLogp);
        }

        /** The same with the reference policy's log-probs (the KL penalty). */
        public LossInputs withRefLogp(Tensor ref) {
            return new LossInputs(hidden, weight, targets, oldLogp, advantages, mask, sequences, ref, rolloutLogp);
        }

        /** The same with the rollout engine's log-probs (the rollout correction). */
        public LossInputs withRolloutLogp(Tensor rollout) {
            return new LossInputs(hidden, weight, targets, oldLogp, advantages, mask, sequences, refLogp, rollout);
        }

        /** The policy-loss op's inputs, logp and entropy given. */
        public PolicyLoss.Inputs perToken(Tensor logp, Tensor entropy) {
            return new PolicyLoss.Inputs(logp, oldLogp, advantages, mask, sequences, refLogp, entropy, rolloutLogp);
        }
    }
}
