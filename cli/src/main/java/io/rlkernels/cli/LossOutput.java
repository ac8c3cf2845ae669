package io.rlkernels.cli;

import io.rlkernels.internal.Check;

/** The f64 loss of an op as the float32 the loss.npy output holds: refused when float32 cannot hold it. */
final class LossOutput {
    private LossOutput() {}

    static float toFloat32(String output, double loss) {
        float f = (float) loss;
        if (Double.isFinite(loss) && !Float.isFinite(f)) {
            throw Check.fail(output, "a loss within float32's range for " + output + ".npy (the inputs are too large)", loss);
        }
        return f;
    }
}
