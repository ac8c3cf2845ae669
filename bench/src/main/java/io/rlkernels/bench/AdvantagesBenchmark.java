package io.rlkernels.bench;

import io.rlkernels.backend.Backend;
import io.rlkernels.backend.Backends;
import io.rlkernels.ops.Gae;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.GroupLayout;
import io.rlkernels.ops.MaskedWhiten;
import io.rlkernels.tensor.DType;
import io.rlkernels.tensor.HostTensor;
import io.rlkernels.tensor.Tensor;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Group advantages over S = 2^20 sequences in groups of 16 (ids shuffled, so groups are not
 * contiguous), GAE and masked whitening over B = 256 rows of T = 4,096 tokens.
 * Bytes per op ({@link #bytesMoved}): what the op must read and write at least.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class AdvantagesBenchmark {
    static final int SEQUENCES = 1 << 20;
    static final int GROUP = 16;
    static final int ROWS = 256;
    static final int TOKENS = 4096;

    @Param({"native", "reference"})
    public String backend;

    private Backend b;
    private HostTensor ids;
    private GroupLayout layout;
    private Tensor rewards;
    private Tensor advantages;
    private Tensor tokenRewards;
    private Tensor values;
    private Tensor mask;
    private Tensor tokenAdvantages;
    private Tensor returns;
    private final GroupAdvantages.Config grpo = GroupAdvantages.Config.defaults();
    private final Gae.Config gae = new Gae.Config(0.99f, 0.95f);

    @Setup(Level.Trial)
    public void setUp() {
        b = Backends.open(backend);
        SplittableRandom rng = new SplittableRandom(3);
        int[] perm = new int[SEQUENCES];
        for (int i = 0; i < SEQUENCES; i++) {
            perm[i] = i;
        }
        for (int i = SEQUENCES - 1; i > 0; i--) { // shuffled: group members are scattered
            int j = rng.nextInt(i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        ids = HostTensor.allocate(DType.I64, SEQUENCES);
        for (int i = 0; i < SEQUENCES; i++) {
            ids.setLong(perm[i], i / GROUP);
        }
        layout = GroupLayout.of(ids);
        try (HostTensor r = Fill.normal(DType.F32, 1.0, SEQUENCES); HostTensor tr = Fill.normal(DType.F32, 1.0, ROWS, TOKENS);
             HostTensor v = Fill.normal(DType.F32, 1.0, ROWS, TOKENS); HostTensor m = HostTensor.allocate(DType.F32, ROWS, TOKENS)) {
            for (long i = 0; i < m.numel(); i++) {
                m.setFloat(i, i % TOKENS < TOKENS - (i / TOKENS) * 7 ? 1f : 0f); // responses of different lengths
            }
            rewards = b.upload(r);
            tokenRewards = b.upload(tr);
            values = b.upload(v);
            mask = b.upload(m);
        }
        advantages = b.allocate(DType.F32, SEQUENCES);
        tokenAdvantages = b.allocate(DType.F32, ROWS, TOKENS);
        returns = b.allocate(DType.F32, ROWS, TOKENS);
    }

    @Benchmark
    public Tensor groupAdvantages() {
        b.groupAdvantages(grpo, rewards, layout, advantages);
        return advantages;
    }

    /** Building the grouping from ids on the host (once per batch; backend-independent). */
    @Benchmark
    public GroupLayout groupLayout() {
        GroupLayout l = GroupLayout.of(ids);
        l.close();
        return l;
    }

    @Benchmark
    public Tensor gae() {
        b.gae(gae, tokenRewards, values, mask, tokenAdvantages, returns);
        return returns;
    }

    @Benchmark
    public Tensor maskedWhiten() {
        b.maskedWhiten(MaskedWhiten.Config.defaults(), tokenAdvantages, mask, returns);
        return returns;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {rewards, advantages, tokenRewards, values, mask, tokenAdvantages, returns}) {
            t.close();
        }
        layout.close();
        ids.close();
        b.close();
    }

    /** Bytes an op must move at least. */
    static double bytesMoved(String op) {
        double tokens = (double) ROWS * TOKENS;
        return switch (op) {
            case "groupAdvantages" -> SEQUENCES * (4.0 + 4.0 + 4.0);   // rewards, order, advantages
            case "groupLayout" -> SEQUENCES * (8.0 + 4.0);             // ids in, order out
            case "gae" -> tokens * (4 * 3 + 4 * 2);                     // rewards, values, mask; advantages, returns
            case "maskedWhiten" -> tokens * (4 * 2 * 2 + 4);            // x and mask twice (two passes), out
            default -> Double.NaN;
        };
    }
}
