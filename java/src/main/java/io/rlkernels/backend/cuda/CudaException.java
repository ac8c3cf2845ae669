package io.rlkernels.backend.cuda;

/** A failed CUDA driver call: names the call and its error code (ARCHITECTURE §7). */
public final class CudaException extends RuntimeException {
    private final String call;
    private final int code;

    public CudaException(String call, int code, String codeName) {
        super(call + " failed with " + codeName + " (" + code + ")");
        this.call = call;
        this.code = code;
    }

    public String call() {
        return call;
    }

    public int code() {
        return code;
    }
}
