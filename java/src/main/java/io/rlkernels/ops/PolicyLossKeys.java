package io.rlkernels.ops;

import io.rlkernels.internal.Check;
import io.rlkernels.ops.PolicyLoss.Aggregation;
import io.rlkernels.ops.PolicyLoss.Config;
import io.rlkernels.ops.PolicyLoss.KlEstimator;
import io.rlkernels.ops.PolicyLoss.LossType;
import io.rlkernels.ops.PolicyLoss.Options;
import io.rlkernels.ops.PolicyLoss.RatioLevel;
import io.rlkernels.ops.PolicyLoss.Rejection;
import io.rlkernels.ops.PolicyLoss.RolloutCorrection;
import io.rlkernels.ops.PolicyLoss.WeightLevel;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The policy loss configured by the key names trainers already use: verl's leaf keys
 * ({@code actor.policy_loss.loss_mode}, {@code actor.clip_ratio_low},
 * {@code algorithm.rollout_correction.rollout_is}, ...) with verl's YAML defaults, TRL's where
 * verl has none ({@code delta}, {@code off_policy_mask_threshold},
 * {@code importance_sampling_level}), and this library's earlier names as aliases. Values are
 * strings as a YAML or command line gives them: booleans {@code true}/{@code false}, numbers in
 * decimal, {@code null} for "unset". The command line's {@code op policy_loss} reads its
 * {@code --param}s through {@link #config}; the README's key table is {@link #KEYS}.
 */
public final class PolicyLossKeys {
    private PolicyLossKeys() {}

    /**
     * One key: its name, the names it is also accepted under, its default as verl writes it, where
     * it comes from, TRL's counterpart (for the README's table; "" where TRL has none), and what it does.
     */
    public record Key(String name, List<String> aliases, String fallback, String source, String trl, String meaning) {}

    /** TRL's GRPOConfig counterparts of the keys, where TRL has one (accepted under our names only: TRL's loss_type is another key's name). */
    private static final Map<String, String> TRL = Map.ofEntries(
            Map.entry("loss_mode", "loss_type (grpo, bnpo, dr_grpo, dapo, luspo, sapo, cispo, vespo)"),
            Map.entry("clip_ratio_low", "epsilon"), Map.entry("clip_ratio_high", "epsilon_high"),
            Map.entry("use_kl_loss", "beta != 0"), Map.entry("kl_loss_coef", "beta"),
            Map.entry("kl_loss_type", "(k3 always)"), Map.entry("entropy_coeff", "entropy_coef"),
            Map.entry("tau_pos", "sapo_temperature_pos"), Map.entry("tau_neg", "sapo_temperature_neg"),
            Map.entry("rollout_is", "vllm_importance_sampling_mode (token_*, sequence_*)"),
            Map.entry("rollout_is_threshold", "vllm_importance_sampling_clip_max (*_truncate); clip_min_clip_max (*_mask)"),
            Map.entry("importance_sampling_level", "importance_sampling_level"), Map.entry("delta", "delta"),
            Map.entry("off_policy_mask_threshold", "off_policy_mask_threshold"),
            Map.entry("top_entropy_quantile", "top_entropy_quantile"));

    /** Every key, in the README table's order. */
    public static final List<Key> KEYS = List.of(
            key("loss_mode", "vanilla", "verl", "vanilla, gspo, sapo, cispo, gpg, clip_cov, kl_cov, dro, dppo_tv, dppo_kl, geo_mean, "
                    + "bypass_mode; TRL's bnpo, luspo, vespo; also ppo (= vanilla) and reinforce (= gpg)", "loss"),
            key("clip_ratio", "0.2", "verl", "epsilon of both clip bounds, unless the next two say otherwise"),
            key("clip_ratio_low", "null", "verl", "1 - epsilon_low bounds the ratio below (null: clip_ratio)", "clip_low"),
            key("clip_ratio_high", "null", "verl", "1 + epsilon_high bounds the ratio above (null: clip_ratio)", "clip_high"),
            key("clip_ratio_c", "3.0", "verl", "the dual clip's c for A < 0 (vanilla, bypass ppo_clip; 0 = off), DPPO's "
                    + "truncation of the detached ratio", "dual_clip"),
            key("loss_agg_mode", "token-mean", "verl", "token-mean, token-sum, seq-mean-token-sum, seq-mean-token-mean, "
                    + "seq-mean-token-sum-norm (gspo and sapo fix seq-mean-token-mean, as verl does)", "agg"),
            key("loss_scale_factor", "null", "verl", "seq-mean-token-sum-norm's constant (null: the longest sequence)"),
            key("denom", "null", "ours", "the denominator of any aggregation: the global count for micro-batches (null: this batch's)"),
            key("use_kl_loss", "false", "verl", "add kl_loss_coef times the KL to the reference policy (needs ref_logp)"),
            key("kl_loss_type", "low_var_kl", "verl", "kl (k1), mse (k2), low_var_kl (k3), abs, and the straight-through k1+, "
                    + "k3+ (also kl+, low_var_kl+); with the alias kl, none turns it off", "kl"),
            key("kl_loss_coef", "0.001", "verl", "the KL term's coefficient", "kl_coef"),
            key("entropy_coeff", "0", "verl", "the entropy bonus's coefficient (needs entropy)", "entropy_coef"),
            key("tau_pos", "1.0", "verl", "sapo's gate temperature for A > 0"),
            key("tau_neg", "1.05", "verl", "sapo's gate temperature for A <= 0"),
            key("dro_beta", "0.1", "verl", "dro's quadratic penalty"),
            key("clip_cov_ratio", "0.0002", "verl", "clip_cov: the fraction of tokens detached, chosen among the candidates"),
            key("clip_cov_lb", "1.0", "verl", "clip_cov: candidates have covariance above this"),
            key("clip_cov_ub", "5.0", "verl", "clip_cov: and below this"),
            key("kl_cov_ratio", "0.0002", "verl", "kl_cov: the fraction of tokens (the top covariances) with the KL penalty"),
            key("ppo_kl_coef", "0.1", "verl", "kl_cov: the penalty's coefficient on |logp - old|"),
            key("seed", "0", "ours", "clip_cov's choice (a key per token from the seed and its index: the same on every backend)"),
            key("token_offset", "0", "ours", "this batch's first token's index in the whole batch (clip_cov's keys for micro-batches)"),
            key("top_entropy_quantile", "1.0", "TRL", "keep the policy-gradient term of the tokens whose entropy is in this top "
                    + "fraction of the batch (needs entropy; 1.0 = all)"),
            key("vespo_k_pos", "2.0", "TRL", "vespo's gamma weighting: k for A >= 0"),
            key("vespo_lambda_pos", "3.0", "TRL", "vespo's lambda for A >= 0"),
            key("vespo_k_neg", "3.0", "TRL", "vespo's k for A < 0"),
            key("vespo_lambda_neg", "2.0", "TRL", "vespo's lambda for A < 0"),
            key("loss_type", "ppo_clip", "verl", "bypass mode's loss: ppo_clip or reinforce (rollout_correction.loss_type)"),
            key("bypass_mode", "false", "verl", "old is the rollout policy; the correction is between logp and it "
                    + "(rollout_correction.bypass_mode; loss_mode=bypass_mode sets it)"),
            key("rollout_is", "null", "verl", "importance weights between rollout and old: token, sequence, geometric "
                    + "(needs rollout_logp, except in bypass mode)"),
            key("rollout_is_threshold", "2.0", "verl", "a number truncates the weights (TIS, >= 1); lower_upper masks "
                    + "them outside [lower, upper] (IcePop, TRL's *_mask)"),
            key("rollout_is_batch_normalize", "false", "verl", "divide the weights by their batch mean"),
            key("rollout_is_batch_mean", "null", "ours", "that mean for micro-batches (the whole batch's "
                    + "rollout_is_batch_mean metric; null: this batch's)"),
            key("rollout_rs", "null", "verl", "rejection criteria, comma-separated: token_k1, token_k2, token_k3, seq_sum_k1..k3, "
                    + "seq_mean_k1..k3, seq_max_k2, seq_max_k3"),
            key("rollout_rs_threshold", "null", "verl", "one threshold, or one per criterion: k1 takes lower_upper ratio "
                    + "bounds (a number u: 1/u_u), k2 and k3 an upper bound"),
            key("importance_sampling_level", "null", "TRL", "the ratio: token, sequence (the true derivative of the "
                    + "sequence ratio), sequence-token (verl's gspo gradient); null: what loss_mode implies", "ratio"),
            key("delta", "null", "TRL", "bound the ratio's unclipped term at delta > 1 (INTELLECT-2's two-sided clip)"),
            key("off_policy_mask_threshold", "null", "TRL", "drop the policy-gradient term of A < 0 tokens in sequences whose "
                    + "mean of (sampler - logp) exceeds it (DeepSeek-V3.2)"));

    private static Key key(String name, String fallback, String source, String meaning, String... aliases) {
        return new Key(name, List.of(aliases), fallback, source, TRL.getOrDefault(name, ""), meaning);
    }

    /** Every name a key is accepted under. */
    public static Set<String> names() {
        Set<String> out = new TreeSet<>();
        for (Key k : KEYS) {
            out.add(k.name());
            out.addAll(k.aliases());
        }
        return out;
    }

    /** The loss modes this library does not have yet, refused by name rather than as unknown. */
    private static final List<String> NOT_YET = List.of();

    /**
     * The configuration these keys describe; a key not given takes verl's default. An unknown key,
     * a key given under two of its names, or a value out of range is refused, naming the key.
     */
    public static Config config(Map<String, String> given) {
        Map<String, String> v = canonical(given);
        String mode = v.get("loss_mode").toLowerCase(Locale.ROOT);
        float clip = number(v, "clip_ratio");
        float low = v.get("clip_ratio_low").equals("null") ? clip : number(v, "clip_ratio_low");
        float high = v.get("clip_ratio_high").equals("null") ? clip : number(v, "clip_ratio_high");
        float c = number(v, "clip_ratio_c");
        Aggregation agg = Aggregation.parse(v.get("loss_agg_mode"));
        boolean bypass = flag(v, "bypass_mode");
        LossType loss;
        RatioLevel ratio = RatioLevel.TOKEN;
        Options options = Options.defaults().withSapoTemperatures(number(v, "tau_pos"), number(v, "tau_neg"))
                .withDroBeta(number(v, "dro_beta")).withVespo(number(v, "vespo_k_pos"), number(v, "vespo_lambda_pos"),
                        number(v, "vespo_k_neg"), number(v, "vespo_lambda_neg"));
        switch (mode) {
            case "vanilla", "ppo" -> loss = LossType.PPO;
            case "gspo" -> { // verl: the sequence ratio with each token's gradient, its log capped at 10, no dual clip
                loss = LossType.PPO;
                ratio = RatioLevel.SEQUENCE_TOKEN;
                agg = Aggregation.SEQ_MEAN_TOKEN_MEAN;
                c = 0;
                options = options.withSequenceLogBounds(Double.NEGATIVE_INFINITY, 10);
            }
            case "sapo" -> {
                loss = LossType.SAPO;
                agg = Aggregation.SEQ_MEAN_TOKEN_MEAN;
            }
            case "cispo" -> loss = LossType.CISPO;
            case "gpg", "reinforce" -> loss = LossType.REINFORCE;
            case "dro" -> loss = LossType.DRO;
            case "geo_mean" -> { // GMPO: a mean over sequences, as verl takes it
                loss = LossType.GEO_MEAN;
                agg = Aggregation.SEQ_MEAN_TOKEN_MEAN;
            }
            case "vespo" -> { // TRL: over the batch's tokens
                loss = LossType.VESPO;
                agg = Aggregation.TOKEN_MEAN;
            }
            case "clip_cov" -> {
                loss = LossType.CLIP_COV;
                c = 0;
            }
            case "kl_cov" -> {
                loss = LossType.KL_COV;
                c = 0;
            }
            case "dppo_tv" -> loss = LossType.DPPO_TV;
            case "dppo_kl" -> loss = LossType.DPPO_KL;
            case "bypass_mode" -> {
                bypass = true;
                loss = switch (v.get("loss_type")) {
                    case "ppo_clip" -> LossType.PPO;
                    case "reinforce" -> LossType.REINFORCE;
                    default -> throw Check.fail("loss_type", "ppo_clip or reinforce", v.get("loss_type"));
                };
            }
            case "bnpo" -> { // TRL: the clipped ratio without dual clip, over the batch's tokens
                loss = LossType.PPO;
                agg = Aggregation.TOKEN_MEAN;
                c = 0;
            }
            case "luspo" -> { // TRL: the sequence ratio (its true derivative), each sequence's loss times its length
                loss = LossType.PPO;
                ratio = RatioLevel.SEQUENCE;
                agg = Aggregation.SEQ_MEAN_TOKEN_SUM;
                c = 0;
            }
            default -> throw Check.fail("loss_mode", "one of vanilla, gspo, sapo, cispo, gpg, clip_cov, kl_cov, dro, dppo_tv, "
                    + "dppo_kl, geo_mean, bypass_mode, bnpo, luspo, vespo"
                    + (NOT_YET.contains(mode) ? " (" + mode + " is not in this version yet)" : ""), mode);
        }
        if (loss != LossType.PPO && loss != LossType.DPPO_TV && loss != LossType.DPPO_KL) {
            c = 0; // only vanilla PPO's dual clip and DPPO's truncation read clip_ratio_c
        }
        if (!v.get("importance_sampling_level").equals("null")) {
            ratio = RatioLevel.parse(v.get("importance_sampling_level"));
        }
        if (!v.get("delta").equals("null")) {
            options = options.withDelta(number(v, "delta"));
        }
        if (!v.get("off_policy_mask_threshold").equals("null")) {
            options = options.withOffPolicyMask(number(v, "off_policy_mask_threshold"));
        }
        double denominator = Double.NaN;
        if (!v.get("denom").equals("null")) {
            denominator = real(v, "denom");
        } else if (agg == Aggregation.SEQ_MEAN_TOKEN_SUM_NORM && !v.get("loss_scale_factor").equals("null")) {
            denominator = real(v, "loss_scale_factor");
        }
        KlEstimator kl = KlEstimator.NONE;
        float klCoef = 0;
        String klType = v.get("kl_loss_type");
        boolean klOn = flag(v, "use_kl_loss") || given.containsKey("kl") && !klType.equals("none");
        if (klOn) {
            kl = klEstimator(klType);
            klCoef = number(v, "kl_loss_coef");
        }
        PolicyLoss.Selection selection = PolicyLoss.Selection.none()
                .withTopEntropyQuantile(real(v, "top_entropy_quantile"))
                .withCovariance(real(v, loss == LossType.KL_COV ? "kl_cov_ratio" : "clip_cov_ratio"), real(v, "clip_cov_lb"),
                        real(v, "clip_cov_ub"), number(v, "ppo_kl_coef"))
                .withSeed(integer(v, "seed"), integer(v, "token_offset"));
        Config out = new Config(loss, ratio, low, high, c, agg, denominator, kl, klCoef, number(v, "entropy_coeff"),
                rollout(v, bypass), options, selection);
        out.requireConsistent();
        return out;
    }

    /** verl's KL names, and this library's. */
    static KlEstimator klEstimator(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "kl", "k1" -> KlEstimator.K1;
            case "mse", "k2", "mse+", "k2+" -> KlEstimator.K2;
            case "low_var_kl", "k3" -> KlEstimator.K3;
            case "abs" -> KlEstimator.ABS;
            case "kl+", "k1+" -> KlEstimator.K1_PLUS;
            case "low_var_kl+", "k3+" -> KlEstimator.K3_PLUS;
            default -> throw Check.fail("kl_loss_type", "kl (k1), mse (k2), low_var_kl (k3), abs, k1+, k3+ (kl+, low_var_kl+)", s);
        };
    }

    private static RolloutCorrection rollout(Map<String, String> v, boolean bypass) {
        RolloutCorrection rc = RolloutCorrection.none().withBypass(bypass);
        String level = v.get("rollout_is");
        if (!level.equals("null")) {
            if (level.equals("none")) {
                throw Check.fail("rollout_is", "token, sequence, geometric, or null", level);
            }
            rc = rc.withWeights(WeightLevel.parse(level)).withThreshold(v.get("rollout_is_threshold"));
        }
        double mean = v.get("rollout_is_batch_mean").equals("null") ? Double.NaN : real(v, "rollout_is_batch_mean");
        rc = rc.withBatchNormalize(flag(v, "rollout_is_batch_normalize"), mean);
        if (!v.get("rollout_rs").equals("null")) {
            String t = v.get("rollout_rs_threshold");
            rc = rc.withRejection(Rejection.parse(v.get("rollout_rs"), t.equals("null") ? null : t));
        }
        return rc;
    }

    /** Every key under its canonical name, verl's default where not given. */
    private static Map<String, String> canonical(Map<String, String> given) {
        Map<String, String> out = new LinkedHashMap<>();
        Map<String, String> nameOf = new LinkedHashMap<>();
        for (Key k : KEYS) {
            nameOf.put(k.name(), k.name());
            k.aliases().forEach(a -> nameOf.put(a, k.name()));
        }
        List<String> unknown = new ArrayList<>();
        for (Map.Entry<String, String> e : given.entrySet()) {
            String name = nameOf.get(e.getKey());
            if (name == null) {
                unknown.add(e.getKey());
                continue;
            }
            String before = out.put(name, e.getValue().trim());
            if (before != null) {
                throw Check.fail(name, "one value (given under two of its names)", before + " and " + e.getValue());
            }
        }
        if (!unknown.isEmpty()) {
            throw Check.fail("policy loss keys", "keys among " + names(), unknown);
        }
        for (Key k : KEYS) {
            out.putIfAbsent(k.name(), k.fallback());
        }
        String mode = out.get("loss_mode");
        out.put("loss_mode", mode.equals("ppo") ? "vanilla" : mode.equals("reinforce") ? "gpg" : mode);
        if (given.containsKey("kl") && given.get("kl").trim().equals("none")) {
            out.put("kl_loss_type", "none");
        }
        return out;
    }

    private static boolean flag(Map<String, String> v, String key) {
        String s = v.get(key);
        if (!s.equals("true") && !s.equals("false")) {
            throw Check.fail(key, "true or false", s);
        }
        return s.equals("true");
    }

    /** A finite decimal number (f64: counts and means keep their digits). */
    private static double real(Map<String, String> v, String key) {
        String s = v.get(key);
        if (!s.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?")) {
            throw Check.fail(key, "a decimal number", s);
        }
        double d = Double.parseDouble(s);
        if (!Double.isFinite(d)) {
            throw Check.fail(key, "a finite number", s);
        }
        return d;
    }

    /** A non-negative integer. */
    private static long integer(Map<String, String> v, String key) {
        String s = v.get(key);
        if (!s.matches("\\d{1,16}")) {
            throw Check.fail(key, "a non-negative integer", s);
        }
        return Long.parseLong(s);
    }

    /** A finite decimal number within float32's range. */
    private static float number(Map<String, String> v, String key) {
        String s = v.get(key);
        float f = (float) real(v, key);
        if (!Float.isFinite(f)) {
            throw Check.fail(key, "a finite number within float32's range", s);
        }
        return f;
    }
}
