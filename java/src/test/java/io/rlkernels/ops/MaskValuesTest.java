package io.rlkernels.ops;

import io.rlkernels.backend.Backend;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A mask is 0 or 1: an f32 0.5 (or a u8 2) is refused naming the element on every backend and
 * every op that takes a mask, host or device tensor, rather than read as "kept"; -0.0 is a 0.
 */
class MaskValuesTest {
    @ParameterizedTest(name = "{0}")
    @MethodSource("io.rlkernels.testing.BackendUnderTest#all")
    void aMaskOfHalfIsRefusedEverywhere(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        int s = 3;
        int t = 5;
        int n = s * t;
        try (Backend b = bt.open(); HostTensor half = HostTensor.allocate(DType.F32, n).fill(1f);
             HostTensor two = HostTensor.allocate(DType.U8, n); HostTensor ok = HostTensor.allocate(DType.F32, n).fill(1f);
             HostTensor logp = TestData.normal(rng, n, 0.3); HostTensor adv = TestData.normal(rng, n, 1);
             HostTensor grad = HostTensor.allocate(DType.F32, n)) {
            half.setFloat(7, 0.5f);
            ok.setFloat(2, -0.0f);
            for (int i = 0; i < n; i++) {
                two.setLong(i, i == 4 ? 2 : 1);
            }
            try (Tensor dHalf = b.upload(half); Tensor dTwo = b.upload(two); Tensor dOk = b.upload(ok); Tensor dLogp = b.upload(logp);
                 Tensor dAdv = b.upload(adv); Tensor dGrad = b.upload(grad)) {
                PolicyLoss.Config c = PolicyLoss.Config.defaults();
                b.policyLoss(c, new PolicyLoss.Inputs(dLogp, dLogp, dAdv, dOk), dGrad, null); // -0.0 drops, 1 keeps: accepted
                PolicyLossTest.assertRejected("mask[7]", () -> b.policyLoss(c, new PolicyLoss.Inputs(dLogp, dLogp, dAdv, dHalf), dGrad, null));
                PolicyLossTest.assertRejected("mask[4]", () -> b.policyLoss(c, new PolicyLoss.Inputs(dLogp, dLogp, dAdv, dTwo), dGrad, null));
                try (Tensor grid = dHalf.reshape(s, t); Tensor r2 = dLogp.reshape(s, t); Tensor v2 = dAdv.reshape(s, t);
                     Tensor a2 = b.allocate(DType.F32, s, t); Tensor ret2 = b.allocate(DType.F32, s, t);
                     Tensor perSeq = b.allocate(DType.F32, s)) {
                    PolicyLossTest.assertRejected("mask[7]", () -> b.gae(Gae.Config.defaults(), r2, v2, grid, a2, ret2));
                    PolicyLossTest.assertRejected("mask[7]", () -> b.discountedReturns(1f, r2, grid, ret2));
                    PolicyLossTest.assertRejected("mask[7]", () -> b.maskedWhiten(MaskedWhiten.Config.defaults(), r2, grid, a2));
                    PolicyLossTest.assertRejected("mask[7]", () -> b.sequenceToTokens(perSeq, grid, a2));
                }
            }
        }
    }
}
