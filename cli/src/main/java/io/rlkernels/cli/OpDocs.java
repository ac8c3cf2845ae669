package io.rlkernels.cli;

import java.util.List;
import java.util.Locale;

/**
 * Each op's input files, params and outputs: the one table that {@code rlkernels op --help},
 * {@code rlkernels op NAME --help} and the README's op table show (OpDocsTest holds the README to
 * it). Markdown: file names and keys in backticks.
 */
final class OpDocs {
    private OpDocs() {}

    record Entry(String op, String inputs, String params, String outputs) {
        /** The README's row. */
        String markdownRow() {
            return "| `" + op + "` | " + inputs + " | " + params + " | " + outputs + " |";
        }
    }

    static final List<Entry> TABLE = List.of(
            new Entry("logprobs",
                    "`logits.npy` [N,V] float32, float16 or uint16 (bf16 bits); `targets.npy` [N] int32/int64; optional `grad_logp.npy`, `grad_entropy.npy` [N] float32",
                    "`temperature` (1.0), `ignore_index` (-100)",
                    "`logp.npy`, `entropy.npy`, `lse.npy` [N] float32; `grad_logits.npy` [N,V] float32 when an upstream gradient is given"),
            new Entry("linear_logprobs",
                    "`hidden.npy` [N,d], `weight.npy` [V,d] float32, float16 or uint16 (bf16 bits), either mix; `targets.npy` [N] int32/int64; optional `grad_logp.npy`, `grad_entropy.npy` [N] float32",
                    "`temperature` (1.0), `ignore_index` (-100), `chunk` (token rows per chunk; 0: as many as the workspace holds), `workspace_mb` (256)",
                    "`logp.npy`, `lse.npy`, `entropy.npy` [N] float32; with an upstream gradient `grad_hidden.npy` [N,d] and `grad_weight.npy` [V,d] float32 (the fresh gradient)"),
            new Entry("advantages",
                    "`rewards.npy` [S] float32; `group_ids.npy` [S] int32/int64; with `adv_estimator`: `mask.npy` [S,T] float32 or uint8, and `rewards.npy` [K,S] for gdpo, or `token_rewards.npy` [S,T] float32 (reinforce_plus_plus, remax; remax also `baseline_rewards.npy` [S]; optimal_token_baseline also `group_ids.npy`, `old_logp.npy` and `sum_pi_squared.npy` [S,T] float32, optional `rollout_is_weights.npy` [S,T])",
                    "`mode` (grpo; drgrpo, rloo, batch, none, gpg, opo, passk), `eps` (1e-6), `std` (unbiased or biased); or verl's `adv_estimator` with `norm_adv_by_std_in_grpo` (true), `gamma` (1.0), `gdpo_reward_weights` (1 each), `handle_zero_tail` (true), `eps` (verl's: 1e-6, optimal_token_baseline 1e-8)",
                    "`advantages.npy` [S] float32; with `adv_estimator`, `advantages.npy` and `returns.npy` [S,T] float32"),
            new Entry("gae",
                    "`rewards.npy`, `values.npy` [B,T] float32; `mask.npy` [B,T] float32 or uint8",
                    "`gamma` (1.0), `lam` (1.0), `whiten` (false; true whitens the advantages under the mask, as verl does)",
                    "`advantages.npy`, `returns.npy` [B,T] float32"),
            new Entry("bgpo",
                    "`logits.npy` [n_t,R,V] float32 or uint16 (bf16 bits); `targets.npy`, `seq_ids.npy` [R] int32; `masks.npy` [n_t,R] uint8; `weights.npy`, `old.npy` [n_t,S] float32; `advantages.npy` [S] float32",
                    "`clip_low` (0.2), `clip_high` (0.2), `dual_clip` (0 = off), `denom` (S)",
                    "`loss.npy` [1], `grad_logits.npy` [n_t,R,V], `values.npy` [n_t,S] float32, `metrics.json`"),
            new Entry("policy_loss",
                    "`logp.npy`, `old_logp.npy`, `advantages.npy` [N] float32; `mask.npy` [N] float32 or uint8; `seq_ids.npy` [N] int32 (for the sequence ratios, the seq-* modes and the per-sequence corrections); optional `ref_logp.npy`, `entropy.npy`, `rollout_logp.npy` [N] float32",
                    "verl's keys with verl's defaults: [the table below](#policy-loss-keys)",
                    "`loss.npy` [1], `grad_logp.npy` [N] (and `grad_entropy.npy`) float32, `metrics.json` (verl's metric names: `actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower`, `rollout_corr/rollout_is_mean`, ..., and the sums they come from)"));

    static Entry of(String op) {
        return TABLE.stream().filter(e -> e.op().equals(op)).findFirst().orElse(null);
    }

    /** For a terminal: the backticks and the README's links dropped. */
    static String plain(String markdown) {
        return markdown.replace("`", "").replaceAll("\\[([^\\]]*)\\]\\([^)]*\\)", "$1");
    }

    /** op --help: every op in a line; op NAME --help: that op's inputs, params and outputs. */
    static String help(String op) {
        StringBuilder b = new StringBuilder();
        Entry e = op == null ? null : of(op);
        if (e == null) {
            b.append("%nOps (rlkernels op NAME --help for each one's files and params):%n");
            for (Entry x : TABLE) {
                b.append(String.format(Locale.ROOT, "  %-16s in: %s%n", x.op(), firstFiles(x.inputs())));
            }
        } else {
            b.append(String.format(Locale.ROOT, "%n%s%n  inputs (--in):          %s%n  params (--param k=v):   %s%n  outputs (--out):        %s%n",
                    e.op(), plain(e.inputs()), plain(e.params()), plain(e.outputs())));
        }
        return b.toString().replace("%n", System.lineSeparator());
    }

    private static String firstFiles(String inputs) {
        String p = plain(inputs);
        return p.length() <= 60 ? p : p.substring(0, p.lastIndexOf(' ', 60)) + " ...";
    }
}
