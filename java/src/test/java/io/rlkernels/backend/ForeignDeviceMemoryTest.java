package io.rlkernels.backend;

import static io.rlkernels.testing.Refusals.assertRefused;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.rlkernels.ops.LogProbs;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.DeviceTensor;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import io.rlkernels.testing.BackendUnderTest;
import io.rlkernels.testing.TestData;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A device address handed over with {@link DeviceTensor#wrap} is checked against the device's
 * allocations before any use (the emulator's table; cuPointerGetAttribute on a GPU): a bogus or
 * too-short range is refused naming the argument, never dereferenced.
 */
class ForeignDeviceMemoryTest {
    static Stream<BackendUnderTest> devices() {
        return BackendUnderTest.fast().filter(b -> b.kind() == BackendKind.CUDA || b.kind() == BackendKind.EMULATED);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void aBogusAddressIsAnExceptionNotAFault(BackendUnderTest bt) {
        SplittableRandom rng = new SplittableRandom(TestData.newSeed());
        try (Backend b = bt.open(); HostTensor z = TestData.logits(rng, DType.F32, 4, 50, 1.0);
             HostTensor y = TestData.targets(rng, DType.I64, 4, 50, 0, -100);
             Tensor logits = b.upload(z); Tensor targets = b.upload(y);
             Tensor logp = b.allocate(DType.F32, 4); Tensor lse = b.allocate(DType.F32, 4);
             HostTensor host = HostTensor.allocate(DType.F32, 4)) {
            LogProbs.Config c = LogProbs.Config.defaults();
            long real = ((DeviceTensor) logits).address();
            DeviceTensor bogus = DeviceTensor.wrap(0x1000, DType.F32, 4, 50);
            DeviceTensor bogusTargets = DeviceTensor.wrap(0xdead0000L, DType.I64, 4);
            DeviceTensor tooLong = DeviceTensor.wrap(real, DType.F32, 4, 51);
            DeviceTensor pastTheEnd = DeviceTensor.wrap(real + 4L * 4 * 50, DType.F32, 1);

            assertRefused("logits", "0x1000", () -> b.logProbs(c, bogus, targets, logp, lse, null));
            assertRefused("targets", "0xdead0000", () -> b.logProbs(c, logits, bogusTargets, logp, lse, null)); // the host-side id check
            assertRefused("logits", "bytes left", () -> b.logProbs(c, tooLong, targets, logp, lse, null));
            assertRefused("src", "allocation", () -> b.download(DeviceTensor.wrap(real + 4L * 4 * 50, DType.F32, 4), host));
            assertRefused("src", "0x1000", () -> b.download(DeviceTensor.wrap(0x1000, DType.F32, 4), host));
            assertRefused("logp", "", () -> b.logProbs(c, logits, targets, pastTheEnd, lse, null));

            // memory inside a real allocation, wrapped, works like the backend's own
            DeviceTensor view = DeviceTensor.wrap(real, DType.F32, 4, 50);
            b.logProbs(c, view, targets, logp, lse, null);
            b.download(DeviceTensor.wrap(((DeviceTensor) logp).address(), DType.F32, 4), host);
            for (int i = 0; i < 4; i++) {
                assertEquals(true, host.getFloat(i) < 0, "row " + i + " computed through the wrapped view");
            }
        }
    }
}
