package io.rlkernels;

import io.rlkernels.ops.internal.PolicyLossChecks;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.rlkernels.backend.nativecpu.NativeBackend;
import io.rlkernels.ops.Bgpo;
import io.rlkernels.ops.GroupAdvantages;
import io.rlkernels.ops.PolicyLoss;
import io.rlkernels.tensor.DType;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToIntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * native/include/rlk_contract.h declares every code, stats slot and shared constant once, for the
 * C and CUDA kernels; Java cannot include it, so this test parses it and requires each Java enum
 * code, stats component and constant to equal it — both ways: a code or slot on one side only
 * fails too.
 */
class ContractHeaderTest {
    private static final Pattern ENUMERATOR = Pattern.compile("\\b(RLK_[A-Z0-9_]+)\\s*=\\s*(-?\\d+)");
    private static final Pattern DEFINE = Pattern.compile("(?m)^#define\\s+(RLK_[A-Z0-9_]+)\\s+(-?\\d+)\\b");

    /** Every name the header gives a value; the enumerators alone (codes and slots, not #defines). */
    private static final Map<String, Integer> HEADER = parse(header(), true);
    private static final Map<String, Integer> ENUMERATORS = parse(header(), false);

    private static Path header() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path p = dir.resolve("native/include/rlk_contract.h");
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new IllegalStateException("native/include/rlk_contract.h not found above " + Path.of("").toAbsolutePath());
    }

    static Map<String, Integer> parse(Path p, boolean withDefines) {
        String text;
        try {
            text = Files.readString(p).replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        Map<String, Integer> out = new LinkedHashMap<>();
        for (Pattern pattern : withDefines ? List.of(ENUMERATOR, DEFINE) : List.of(ENUMERATOR)) {
            Matcher m = pattern.matcher(text);
            while (m.find()) {
                if (out.put(m.group(1), Integer.parseInt(m.group(2))) != null) {
                    fail("rlk_contract.h declares " + m.group(1) + " twice");
                }
            }
        }
        return out;
    }

    private static int header(String name) {
        Integer v = HEADER.get(name);
        if (v == null) {
            fail("rlk_contract.h does not declare " + name);
        }
        return v;
    }

    /** Every constant of {@code type} is {@code prefix + NAME} with its code, and the header has no other {@code prefix} code. */
    private static <E extends Enum<E>> void sameCodes(String prefix, Class<E> type, ToIntFunction<E> code) {
        for (E e : type.getEnumConstants()) {
            assertEquals(header(prefix + e.name()), code.applyAsInt(e), type.getName() + "." + e.name() + " against " + prefix + e.name());
        }
        long inHeader = ENUMERATORS.keySet().stream().filter(k -> k.startsWith(prefix)).count();
        assertEquals(type.getEnumConstants().length, inHeader, "codes named " + prefix + "* in rlk_contract.h against " + type.getName());
    }

    /**
     * The record's components are the header's slots {@code prefix + COMPONENT_NAME}, in order, the
     * owner's constants {@code STAT_COMPONENT_NAME} are those slots, and {@code length} is their count.
     */
    private static void sameSlots(String prefix, Class<? extends Record> type, String lengthName, int javaLength) {
        RecordComponent[] components = type.getRecordComponents();
        for (int i = 0; i < components.length; i++) {
            String name = snake(components[i].getName());
            assertEquals(header(prefix + name), i, type.getName() + "." + components[i].getName() + " is component " + i + ", " + prefix + name);
            assertEquals(i, staticInt(type.getEnclosingClass(), "STAT_" + name), type.getEnclosingClass().getSimpleName() + ".STAT_" + name);
        }
        long javaSlots = java.util.Arrays.stream(type.getEnclosingClass().getDeclaredFields())
                .filter(f -> f.getName().startsWith("STAT_")).count();
        assertEquals(components.length, javaSlots, "STAT_ constants of " + type.getEnclosingClass().getName());
        assertEquals(header(lengthName), components.length, lengthName + " against the components of " + type.getName());
        assertEquals(header(lengthName), javaLength, lengthName + " against Java's STATS_LENGTH");
        long inHeader = ENUMERATORS.keySet().stream().filter(k -> k.startsWith(prefix) && !k.equals(lengthName)).count();
        assertEquals(components.length, inHeader, "slots named " + prefix + "* in rlk_contract.h against " + type.getName());
    }

    /** clipHigh -> CLIP_HIGH, dSum -> D_SUM. */
    static String snake(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1_$2").toUpperCase(Locale.ROOT);
    }

    /** A package-private class of the library, by name. */
    private static Class<?> internalClass(String name) {
        try {
            return Class.forName(name);
        } catch (ClassNotFoundException e) {
            throw new AssertionError(name + " is gone: where does the constant live now?", e);
        }
    }

    private static int staticInt(Class<?> type, String name) {
        try {
            Field f = type.getDeclaredField(name);
            assertTrue(Modifier.isStatic(f.getModifiers()) && Modifier.isFinal(f.getModifiers()), name + " is a constant");
            f.setAccessible(true);
            return f.getInt(null);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(type.getName() + " has no constant " + name, e);
        }
    }

    @Test
    void policyLossCodesAndSlots() {
        sameCodes("RLK_LOSS_", PolicyLoss.LossType.class, Enum::ordinal);
        sameCodes("RLK_RATIO_", PolicyLoss.RatioLevel.class, Enum::ordinal);
        sameCodes("RLK_AGG_", PolicyLoss.Aggregation.class, Enum::ordinal);
        sameCodes("RLK_KL_", PolicyLoss.KlEstimator.class, Enum::ordinal);
        sameCodes("RLK_IS_", PolicyLoss.WeightLevel.class, Enum::ordinal);
        sameCodes("RLK_ISM_", PolicyLoss.WeightMode.class, Enum::ordinal);
        sameCodes("RLK_RS_", PolicyLoss.Rejection.Option.class, Enum::ordinal);
        sameSlots("RLK_PL_", PolicyLoss.Stats.class, "RLK_PL_STATS", PolicyLoss.STATS_LENGTH);
        for (String section : new String[] {"FIRST_MIN", "FIRST_MAX", "FIRST_SET"}) {
            assertEquals(header("RLK_PLS_" + section), staticInt(PolicyLoss.class, "STATS_" + section), "PolicyLoss.STATS_" + section);
        }
        assertEquals(header("RLK_PL_RATIO_MIN"), header("RLK_PLS_FIRST_MIN"), "the minima begin with the ratio's");
        assertEquals(header("RLK_PL_RATIO_MAX"), header("RLK_PLS_FIRST_MAX"), "the maxima begin with the ratio's");
        assertEquals(header("RLK_PL_DENOMINATOR"), header("RLK_PLS_FIRST_SET"), "the values used begin with the denominator");
        assertEquals(3, ENUMERATORS.keySet().stream().filter(k -> k.startsWith("RLK_PLS_")).count(), "three sections");
        assertEquals(header("RLK_PLS_FIRST_SET"), staticInt(internalClass("io.rlkernels.backend.cuda.PolicyLossLaunch"), "POLICY_PARTIAL"),
                "PolicyLossLaunch.POLICY_PARTIAL: the slots before the values used");
        // the parameter array: every RLK_PP_ slot is PolicyLossChecks.PARAM_ of the same name, both ways
        int params = 0;
        for (Field f : PolicyLossChecks.class.getDeclaredFields()) {
            if (f.getName().startsWith("PARAM_")) {
                String name = "RLK_PP_" + f.getName().substring("PARAM_".length());
                assertEquals(header(name), staticInt(PolicyLossChecks.class, f.getName()), "PolicyLossChecks." + f.getName());
                params++;
            }
        }
        assertEquals(ENUMERATORS.keySet().stream().filter(k -> k.startsWith("RLK_PP_")).count(), params,
                "RLK_PP_* slots against PolicyLossChecks.PARAM_*");
        assertEquals(header("RLK_PP_RS_BOUNDS") + 2 * header("RLK_RS_OPTIONS"), header("RLK_PP_COUNT"),
                "the rejection bounds are the last slots");
        double[] p = PolicyLossChecks.params(PolicyLoss.Config.defaults().withLoss(PolicyLoss.LossType.CISPO), null);
        assertEquals(header("RLK_PP_COUNT"), p.length, "PolicyLossChecks.params: RLK_PP_COUNT values");
        assertEquals(header("RLK_LOSS_CISPO"), (int) p[header("RLK_PP_LOSS")], "PolicyLossChecks.params: the loss type's slot");
    }

    @Test
    void bgpoSlots() {
        sameSlots("RLK_BGPO_", Bgpo.Stats.class, "RLK_BGPO_STATS", Bgpo.STATS_LENGTH);
        double[] initial = Bgpo.Stats.initial();
        assertEquals(Double.POSITIVE_INFINITY, initial[header("RLK_BGPO_D_MIN")], "Bgpo.Stats.initial(): min d starts at +inf");
        assertEquals(Double.NEGATIVE_INFINITY, initial[header("RLK_BGPO_D_MAX")], "Bgpo.Stats.initial(): max d starts at -inf");
    }

    @Test
    void advantageModesTypesVariantsAndStatuses() {
        sameCodes("RLK_ADV_", GroupAdvantages.Mode.class, GroupAdvantages.Mode::code);
        for (DType t : new DType[] {DType.F32, DType.BF16, DType.F16, DType.I32, DType.I64}) {
            assertEquals(header("RLK_" + t.name()), t.code(), "DType." + t.name() + ".code()");
        }
        for (String isa : new String[] {"AUTO", "X86_64", "AVX2", "AVX512"}) {
            assertEquals(header("RLK_ISA_" + isa), staticInt(NativeBackend.class, "ISA_" + isa), "NativeBackend.ISA_" + isa);
        }
        int checked = 0;
        Class<?> calls = internalClass("io.rlkernels.backend.nativecpu.NativeCalls");
        for (Field f : calls.getDeclaredFields()) { // every status code Java names
            if (f.getName().startsWith("RLK_") && f.getType() == int.class) {
                assertEquals(header(f.getName()), staticInt(calls, f.getName()), "NativeCalls." + f.getName());
                checked++;
            }
        }
        assertTrue(checked >= 2, "NativeCalls names RLK_OK and RLK_OVERFLOW");
    }

    /** Each #define of the header and the Java constant that must equal it ("class#FIELD"). */
    private static final Map<String, String> CONSTANTS = Map.of(
            "RLK_ABI_VERSION", "io.rlkernels.backend.nativecpu.internal.NativeLibrary#ABI_VERSION",
            "RLK_PL_CHUNK", "io.rlkernels.backend.cuda.PolicyLossLaunch#POLICY_CHUNK",
            "RLK_PL_THREADS", "io.rlkernels.backend.cuda.PolicyLossLaunch#THREADS",
            "RLK_WARP", "io.rlkernels.backend.cuda.CudaBackend#WARP",
            "RLK_MAX_THREADS", "io.rlkernels.backend.cuda.CudaBackend#MAX_THREADS",
            "RLK_VECTOR_BYTES", "io.rlkernels.backend.cuda.LogProbsLaunch#VECTOR_BYTES",
            "RLK_GAE_ITEMS", "io.rlkernels.backend.cuda.AdvantagesLaunch#GAE_ITEMS",
            "RLK_MM_TILE", "io.rlkernels.backend.cuda.MatmulLaunch#TILE",
            "RLK_RS_OPTIONS", "io.rlkernels.ops.internal.PolicyLossChecks#RS_OPTIONS");

    @Test
    void everyConstantHasItsJavaTwin() {
        Map<String, Integer> defines = new LinkedHashMap<>(HEADER);
        defines.keySet().removeAll(ENUMERATORS.keySet());
        assertEquals(new java.util.TreeSet<>(CONSTANTS.keySet()), new java.util.TreeSet<>(defines.keySet()),
                "the #defines of rlk_contract.h, each with the Java constant that equals it");
        for (Map.Entry<String, String> e : CONSTANTS.entrySet()) {
            String[] where = e.getValue().split("#");
            assertEquals(header(e.getKey()), staticInt(internalClass(where[0]), where[1]), e.getValue() + " = " + e.getKey());
        }
        int threads = header("RLK_PL_THREADS");
        assertTrue(threads % header("RLK_WARP") == 0 && threads <= header("RLK_MAX_THREADS"), "RLK_PL_THREADS: whole warps");
    }

    @Test
    void theLibrariesWereBuiltFromTheHeaderTheJarCarries() throws IOException {
        byte[] source = Files.readAllBytes(header());
        byte[] shipped = io.rlkernels.internal.BundledFiles.read(io.rlkernels.internal.Contract.RESOURCE).orElseThrow();
        assertTrue(java.util.Arrays.equals(source, shipped), "the jar's rlk_contract.h is the source's");
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(source);
        int value = (int) crc.getValue();
        assertEquals(null, io.rlkernels.internal.Contract.mismatch("librlkernels.so", value));
        String refused = io.rlkernels.internal.Contract.mismatch("librlkernels.so", value ^ 1);
        assertTrue(refused != null && refused.contains("librlkernels.so") && refused.contains("rebuild"), refused);
        // both libraries loaded, so each passed the check at load (a mismatch makes them unavailable)
        assertTrue(io.rlkernels.backend.Backends.availability(io.rlkernels.backend.BackendKind.NATIVE).available(),
                io.rlkernels.backend.Backends.availability(io.rlkernels.backend.BackendKind.NATIVE).reason());
        assertTrue(io.rlkernels.backend.Backends.availability(io.rlkernels.backend.BackendKind.EMULATED).available(),
                io.rlkernels.backend.Backends.availability(io.rlkernels.backend.BackendKind.EMULATED).reason());
    }

    @Test
    void theParserSeesWhatItMustAndNothingElse() {
        assertEquals("CLIP_HIGH", snake("clipHigh"));
        assertEquals("D_SUM", snake("dSum"));
        assertEquals("NEG_APPROX_KL_SUM", snake("negApproxKlSum"));
        assertEquals(-1, header("RLK_ISA_AUTO"));
        assertEquals(4096, header("RLK_PL_CHUNK"));
        assertTrue(HEADER.keySet().stream().noneMatch(k -> k.equals("RLK_CONTRACT_H")), "the include guard is no constant");
        assertTrue(!ENUMERATORS.containsKey("RLK_PL_CHUNK") && ENUMERATORS.containsKey("RLK_PL_LOSS"), "a #define is no slot");
    }
}
