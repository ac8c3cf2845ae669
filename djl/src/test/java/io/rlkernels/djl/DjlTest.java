package io.rlkernels.djl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.LogProbs;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * DJL's PyTorch engine on the CPU, offline (libtorch from Maven Central's jar): views share the
 * NDArray's memory and outlive its handle, bad arrays are refused by name, and the library's
 * log-probs gradient reaches DJL's autograd equal to DJL's own.
 */
class DjlTest {
    @Test
    void aViewIsTheArraysMemoryAndOutlivesItsHandle() {
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray a = m.randomNormal(new Shape(4, 8));
            long own = MemorySegment.ofBuffer(a.toByteBuffer(true)).address();
            HostTensor v = DjlTensors.output("a", a);
            assertEquals(own, v.segment().address(), "no copy: the view's address is the array's");
            assertEquals(DType.F32, v.dtype());
            v.setFloat(3, 42f);
            assertEquals(42f, a.getFloat(0, 3), "a write through the view is the array's");
            a.close();
            assertEquals(42f, v.getFloat(3), "the view holds the storage after the array's handle is closed");
            v.close();
            IllegalArgumentException closed = assertThrows(IllegalArgumentException.class, () -> DjlTensors.input("logits", a));
            assertEquals("logits: expected an open NDArray, found a closed one", closed.getMessage());
            // bfloat16 is refused by its type alone: DJL 0.36's PyTorch engine aborts the JVM on creating one (m.zeros(.., BFLOAT16))
            IllegalArgumentException bf16 = assertThrows(IllegalArgumentException.class, () -> DjlTensors.dtype("logits", DataType.BFLOAT16));
            assertTrue(bf16.getMessage().startsWith("logits: expected float32") && bf16.getMessage().contains("toType"), bf16.getMessage());
            assertEquals(DType.U8, DjlTensors.dtype("mask", DataType.BOOLEAN));
            try (NDArray c = m.randomNormal(new Shape(3, 5)); NDArray t = c.transpose()) {
                IllegalArgumentException strided = assertThrows(IllegalArgumentException.class, () -> DjlTensors.output("out", t));
                assertTrue(strided.getMessage().startsWith("out: expected a dense NDArray"), strided.getMessage());
                try (HostTensor in = DjlTensors.input("t", t)) { // as an input, its contiguous copy
                    assertEquals(c.getFloat(1, 2), in.getFloat(2L * 3 + 1));
                }
            }
        }
    }

    /** Over 2^31 bytes no ByteBuffer holds the array: the view takes the storage's address and size instead, still no copy. */
    @Test
    void anArrayOverTwoGibibytesIsViewedWithoutACopy() {
        long cols = 1L << 26;
        try (NDManager m = NDManager.newBaseManager(); NDArray big = m.zeros(new Shape(9, cols))) { // 2.4 GB of f32
            try (HostTensor v = DjlTensors.output("big", big)) {
                assertEquals(9 * cols, v.numel());
                v.setFloat(9 * cols - 1, 7f);
                v.setFloat(0, 3f);
                assertEquals(7f, big.getFloat(8, cols - 1), "the last element is the array's");
                assertEquals(3f, big.getFloat(0, 0));
            }
        }
    }

    /** d(-mean logp[target])/dW of logits = x W: DJL's own autograd against the library's gradient through the surrogate. */
    @Test
    void theLibrarysGradientReachesDjlsAutograd() {
        int n = 16;
        int d = 12;
        int v = 50;
        for (String kind : new String[] {"native", "reference"}) {
            try (NDManager m = NDManager.newBaseManager(); Backend backend = Backends.open(kind)) {
                Engine.getInstance().setRandomSeed(7);
                NDArray x = m.randomNormal(new Shape(n, d));
                NDArray w = m.randomNormal(new Shape(d, v)).mul(0.5f);
                int[] ids = new int[n];
                for (int i = 0; i < n; i++) {
                    ids[i] = (i * 7 + 3) % v;
                }
                NDArray targets = m.create(ids);
                w.setRequiresGradient(true);
                float[] want;
                try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                    NDArray logits = x.matMul(w);
                    NDArray logp = logits.logSoftmax(1).gather(targets.toType(DataType.INT64, false).reshape(n, 1), 1);
                    gc.backward(logp.sum().neg().div(n));
                    want = w.getGradient().toFloatArray();
                }
                NDArray w2 = w.duplicate(); // a fresh parameter: DJL accumulates gradients across collectors
                w2.setRequiresGradient(true);
                float[] got;
                LogProbs.Config c = LogProbs.Config.defaults();
                try (GradientCollector gc = Engine.getInstance().newGradientCollector();
                     HostTensor g = HostTensor.allocate(DType.F32, n).fill(-1f / n)) {
                    NDArray logits = x.matMul(w2);
                    try (LogProbs.Result r = DjlAutograd.logProbs(backend, c, logits, targets)) {
                        gc.backward(DjlAutograd.surrogate(backend, c, logits, targets, r, g, null));
                    }
                    got = w2.getGradient().toFloatArray();
                }
                assertEquals(want.length, got.length);
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], got[i], 1e-5 + 1e-5 * Math.abs(want[i]), kind + ": dW[" + i + "]");
                }
            }
        }
    }

    /** PPO on DJL arrays in one call: the loss and dW equal PPO written in DJL's own ops with its autograd. */
    @Test
    void aPolicyGradientStepMatchesPpoInDjl() {
        int n = 24;
        int d = 10;
        int v = 40;
        try (NDManager m = NDManager.newBaseManager(); Backend backend = Backends.open("native")) {
            Engine.getInstance().setRandomSeed(11);
            NDArray x = m.randomNormal(new Shape(n, d));
            NDArray w = m.randomNormal(new Shape(d, v)).mul(0.3f);
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = (i * 5 + 1) % v;
            }
            NDArray targets = m.create(ids);
            NDArray adv = m.randomNormal(new Shape(n));
            NDArray mask = m.ones(new Shape(n));
            // the old policy: the current one's log-probs, shifted so that some ratios clip
            NDArray old = x.matMul(w).logSoftmax(1).gather(targets.toType(DataType.INT64, false).reshape(n, 1), 1).reshape(n)
                    .add(m.randomNormal(new Shape(n)).mul(0.3f));
            float eps = 0.2f;
            w.setRequiresGradient(true);
            float want;
            float[] wantGrad;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                NDArray logp = x.matMul(w).logSoftmax(1).gather(targets.toType(DataType.INT64, false).reshape(n, 1), 1).reshape(n);
                NDArray ratio = logp.sub(old).exp();
                NDArray unclipped = ratio.mul(adv).neg();
                NDArray clipped = ratio.clip(1 - eps, 1 + eps).mul(adv).neg();
                NDArray l = unclipped.maximum(clipped).mean();
                want = l.getFloat();
                gc.backward(l);
                wantGrad = w.getGradient().toFloatArray();
            }
            NDArray w2 = w.duplicate();
            w2.setRequiresGradient(true);
            PolicyLoss.Config ppo = PolicyLoss.Config.defaults().withClip(eps, eps);
            float[] gotGrad;
            double got;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                NDArray logits = x.matMul(w2);
                DjlAutograd.Step step = DjlAutograd.policyLoss(backend, LogProbs.Config.defaults(), ppo, logits, targets, old, adv, mask, null);
                got = step.stats().loss();
                gc.backward(step.surrogate());
                gotGrad = w2.getGradient().toFloatArray();
            }
            assertEquals(want, got, 1e-5 + 1e-5 * Math.abs(want), "the loss");
            for (int i = 0; i < wantGrad.length; i++) {
                assertEquals(wantGrad[i], gotGrad[i], 1e-5 + 1e-4 * Math.abs(wantGrad[i]), "dW[" + i + "]");
            }
        }
    }
}
