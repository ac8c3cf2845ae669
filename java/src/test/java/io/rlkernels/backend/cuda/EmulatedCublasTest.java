package io.rlkernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.rlkernels.backend.BackendKind;
import io.rlkernels.backend.Backends;
import io.rlkernels.backend.cuda.internal.CudaProbe;
import io.rlkernels.backend.cuda.internal.Cublas;
import io.rlkernels.internal.BundledFiles;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.Test;

/**
 * The cuda backend's matrix products go to cuBLAS through the FFM binding (on the emulated driver,
 * to its stand-in, cuda-kernels/emu/cublas.cpp), the handle is destroyed when the backend closes,
 * and rlkernels.blas=own sends them to the own kernel instead.
 */
class EmulatedCublasTest {

    private static long call(String symbol) throws Throwable {
        SymbolLookup lib = SymbolLookup.libraryLookup(BundledFiles.file(Cublas.EMULATED).orElseThrow(), Arena.global());
        MethodHandle h = Linker.nativeLinker().downcallHandle(lib.find(symbol).orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_LONG));
        return (long) h.invokeExact();
    }

    @Test
    void productsGoThroughCublasAndItsHandleIsDestroyedOnClose() throws Throwable {
        assumeTrue(CudaProbe.emulatedDriver(), "needs RLKERNELS_CUDA_DRIVER=emulator (bin/test sets it without a GPU)");
        assumeTrue(CudaProbe.result().available(), CudaProbe.result().reason());
        assertTrue(Cublas.get().isPresent(), "cuBLAS binding: " + Cublas.unavailableReason());
        long before = call("emu_cublas_gemms");
        try (CudaBackend b = (CudaBackend) Backends.open(BackendKind.CUDA);
             HostTensor a = HostTensor.allocate(DType.BF16, 3, 4).fill(0.5f); HostTensor w = HostTensor.allocate(DType.F32, 5, 4).fill(2f);
             Tensor c = b.allocate(DType.F32, 3, 5); HostTensor out = HostTensor.allocate(DType.F32, 3, 5)) {
            assertEquals("cuBLAS (emulated libcublas.so.13)", b.blas());
            b.matmul(false, true, 1f, a, w, 0f, c);
            b.download(c, out);
            for (float x : out.toFloatArray()) {
                assertEquals(4f, x, "0.5 * 2 summed over 4");
            }
            assertEquals(1, call("emu_cublas_live_handles"), "one handle while the backend is open");
        }
        assertEquals(0, call("emu_cublas_live_handles"), "closing the backend destroys its handle");
        assertEquals(before + 1, call("emu_cublas_gemms"), "one cublasGemmEx");
        System.setProperty("rlkernels.blas", "own");
        try (CudaBackend b = (CudaBackend) Backends.open(BackendKind.CUDA)) {
            assertTrue(b.blas().startsWith("own kernel"), b.blas());
        } finally {
            System.clearProperty("rlkernels.blas");
        }
    }
}
