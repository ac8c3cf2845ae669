/*
 * rlk_contract.h — every code, stats slot and shared constant the kernels and Java agree on,
 * declared once. Included by the native C (rlkernels.h) and by the CUDA kernels (common.cuh),
 * so it is plain C that C++ and nvcc also read: enums and integer #defines only. Java does not
 * include it: ContractHeaderTest (java/src/test) parses this file and asserts that every Java
 * enum code, stats slot and constant equals it, so drift fails the build.
 */
#ifndef RLK_CONTRACT_H
#define RLK_CONTRACT_H

/* Element types of logits and of gradient outputs (io.rlkernels.tensor.DType.code()). */
enum rlk_dtype { RLK_F32 = 0, RLK_BF16 = 1, RLK_F16 = 2 };
/* Integer types of target ids (DType.code() of I32, I64). */
enum rlk_itype { RLK_I32 = 0, RLK_I64 = 1 };

/* Return codes. RLK_OVERFLOW: finite inputs gave an output float32 cannot hold (written as an
   infinity); the caller finds the element and refuses the inputs. */
enum rlk_status { RLK_OK = 0, RLK_BAD_TARGET = 1, RLK_BAD_DTYPE = 2, RLK_BAD_ARGUMENT = 3, RLK_OUT_OF_MEMORY = 4, RLK_OVERFLOW = 5 };

/* Instruction-set variants of the native library, in the order they are tried (NativeBackend.ISA_*). */
enum rlk_isa { RLK_ISA_AUTO = -1, RLK_ISA_X86_64 = 0, RLK_ISA_AVX2 = 1, RLK_ISA_AVX512 = 2 };

/* Group advantage modes (io.rlkernels.ops.GroupAdvantages.Mode). */
enum rlk_adv_mode {
  RLK_ADV_GRPO = 0,
  RLK_ADV_DRGRPO = 1,
  RLK_ADV_RLOO = 2,
  RLK_ADV_BATCH = 3,
  RLK_ADV_NONE = 4,
  RLK_ADV_GPG = 5,  /* alpha (r - mean), alpha = S / the nonzero rewards of the batch */
  RLK_ADV_OPO = 6,  /* r - the group's length-weighted mean reward */
  RLK_ADV_PASSK = 7 /* the group's best gets r_max - r_second (over std + eps), the others 0 */
};

/* Policy loss (io.rlkernels.ops.PolicyLoss): loss type, ratio level, aggregation, KL estimator. */
enum rlk_loss_type {
  RLK_LOSS_PPO = 0,
  RLK_LOSS_CISPO = 1,
  RLK_LOSS_REINFORCE = 2,
  RLK_LOSS_SAPO = 3,
  RLK_LOSS_DRO = 4,
  RLK_LOSS_DPPO_TV = 5,
  RLK_LOSS_DPPO_KL = 6,
  RLK_LOSS_GEO_MEAN = 7, /* GMPO: the sequence's geometric-mean ratio of sign-clipped token ratios */
  RLK_LOSS_VESPO = 8,    /* TRL's VESPO: -phi(w) A logp, phi a gamma weighting of the sequence ratio */
  RLK_LOSS_CLIP_COV = 9, /* verl's clip_cov: PPO's clip, chosen high-covariance tokens detached */
  RLK_LOSS_KL_COV = 10   /* verl's kl_cov: -A r, plus ppo_kl_coef |logp - old| on the top-covariance tokens */
};
/* SEQUENCE: the sequence's ratio and its true derivative (TRL's sequence level); SEQUENCE_TOKEN:
   its value with each token's own gradient, sg(r_s) p / sg(p) (verl's GSPO). */
enum rlk_ratio_level { RLK_RATIO_TOKEN = 0, RLK_RATIO_SEQUENCE = 1, RLK_RATIO_SEQUENCE_TOKEN = 2 };
enum rlk_aggregation {
  RLK_AGG_TOKEN_MEAN = 0,
  RLK_AGG_SEQ_MEAN_TOKEN_MEAN = 1,
  RLK_AGG_SEQ_MEAN_TOKEN_SUM = 2,
  RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM = 3,
  RLK_AGG_TOKEN_SUM = 4
};
/* The KL estimators; the _PLUS ones are verl's straight-through "k1+" and "k3+": k1's or k3's
   value, k2's gradient (logp - ref). */
enum rlk_kl { RLK_KL_NONE = 0, RLK_KL_K1 = 1, RLK_KL_K2 = 2, RLK_KL_K3 = 3, RLK_KL_ABS = 4, RLK_KL_K1_PLUS = 5, RLK_KL_K3_PLUS = 6 };

/* Rollout correction (PolicyLoss.RolloutCorrection): the level of the importance weight between
   the rollout policy and the policy the loss is relative to, what a threshold does to it, and the
   rejection criteria (verl's rollout_rs options), each a statistic of d = log(prox / rollout). */
enum rlk_is_level { RLK_IS_NONE = 0, RLK_IS_TOKEN = 1, RLK_IS_SEQUENCE = 2, RLK_IS_GEOMETRIC = 3 };
enum rlk_is_mode { RLK_ISM_TRUNCATE = 0, RLK_ISM_MASK = 1 };
enum rlk_rs {
  RLK_RS_TOKEN_K1 = 0,
  RLK_RS_TOKEN_K2 = 1,
  RLK_RS_TOKEN_K3 = 2,
  RLK_RS_SEQ_SUM_K1 = 3,
  RLK_RS_SEQ_SUM_K2 = 4,
  RLK_RS_SEQ_SUM_K3 = 5,
  RLK_RS_SEQ_MEAN_K1 = 6,
  RLK_RS_SEQ_MEAN_K2 = 7,
  RLK_RS_SEQ_MEAN_K3 = 8,
  RLK_RS_SEQ_MAX_K2 = 9,
  RLK_RS_SEQ_MAX_K3 = 10
};
#define RLK_RS_OPTIONS 11 /* the count (PolicyLoss.Rejection.Option) */

/* The policy loss's parameters: one f64 array the kernels take whole (PolicyLossChecks.params), so
   that a new option is a slot here, not a new kernel argument. Codes are stored as doubles. */
enum rlk_pl_param {
  RLK_PP_LOSS = 0,
  RLK_PP_RATIO = 1,
  RLK_PP_AGG = 2,
  RLK_PP_KL = 3,
  RLK_PP_CLIP_LOW = 4,
  RLK_PP_CLIP_HIGH = 5,
  RLK_PP_DUAL_CLIP = 6,
  RLK_PP_KL_COEF = 7,
  RLK_PP_ENTROPY_COEF = 8,
  RLK_PP_DENOMINATOR = 9, /* NaN: what the aggregation implies for this batch */
  RLK_PP_LONGEST = 10,    /* the longest sequence (seq-mean-token-sum-norm's implied denominator) */
  RLK_PP_BYPASS = 11,     /* 1: old is the rollout policy, the correction is between logp and old */
  RLK_PP_IS_LEVEL = 12,   /* enum rlk_is_level */
  RLK_PP_IS_MODE = 13,    /* enum rlk_is_mode */
  RLK_PP_IS_LOWER = 14,
  RLK_PP_IS_UPPER = 15,
  RLK_PP_IS_APPLY = 16,      /* 1: the weights multiply the policy-gradient term (else metrics only) */
  RLK_PP_IS_NORMALIZE = 17,  /* 1: the weights are divided by their batch mean */
  RLK_PP_IS_NORMALIZER = 18, /* that mean, NaN: this batch's */
  RLK_PP_TAU_POS = 19,       /* SAPO's gate temperatures (A > 0, A <= 0) */
  RLK_PP_TAU_NEG = 20,
  RLK_PP_DRO_BETA = 21,      /* DRO's quadratic penalty */
  RLK_PP_DELTA = 22,         /* the two-sided bound of the ratio's unclipped term (0: off) */
  RLK_PP_OPSM = 23,          /* the off-policy sequence mask's threshold (NaN: off) */
  RLK_PP_SEQ_LOG_MIN = 24,   /* the bounds of a sequence ratio's logarithm */
  RLK_PP_SEQ_LOG_MAX = 25,
  RLK_PP_VESPO_K_POS = 26,   /* VESPO's gamma weighting: k and lambda for A >= 0 and A < 0 */
  RLK_PP_VESPO_LAMBDA_POS = 27,
  RLK_PP_VESPO_K_NEG = 28,
  RLK_PP_VESPO_LAMBDA_NEG = 29,
  RLK_PP_ENTROPY_THRESHOLD = 30, /* tokens with entropy below it lose their policy-gradient term (NaN: off) */
  RLK_PP_COV_MEAN_ADV = 31,      /* the covariance losses' batch means of A and logp */
  RLK_PP_COV_MEAN_LOGP = 32,
  RLK_PP_COV_THRESHOLD = 33,     /* kl_cov: the smallest selected covariance; clip_cov: the largest selected key */
  RLK_PP_COV_LB = 34,            /* clip_cov's candidates: lb < cov < ub */
  RLK_PP_COV_UB = 35,
  RLK_PP_PPO_KL_COEF = 36,       /* kl_cov's coefficient */
  RLK_PP_SEED = 37,              /* clip_cov's choice: the key of token i is rlk_select_key(seed, offset + i) */
  RLK_PP_TOKEN_OFFSET = 38,
  RLK_PP_RS_BOUNDS = 39,     /* RLK_RS_OPTIONS pairs (lower, upper), -inf/+inf where an option is off */
  RLK_PP_COUNT = 61          /* the length: RLK_PP_RS_BOUNDS + 2 RLK_RS_OPTIONS */
};

/* The policy loss's f64 stats, slot by slot, in the order of PolicyLoss.Stats's components:
   sums first, then minima, maxima and the values the call used (sections: rlk_policy_stat_section).
   RC_*: rollout correction, over the tokens kept before rejection. */
enum rlk_policy_stat {
  RLK_PL_LOSS = 0,
  RLK_PL_TOKENS = 1,
  RLK_PL_SEQUENCES = 2,
  RLK_PL_CLIP_HIGH = 3,
  RLK_PL_CLIP_LOW = 4,
  RLK_PL_CLIP_DUAL = 5,
  RLK_PL_NEG_APPROX_KL_SUM = 6, /* sum of old - logp */
  RLK_PL_RATIO_SUM = 7,
  RLK_PL_RC_TOKENS = 8,              /* tokens kept before rejection */
  RLK_PL_RC_SEQUENCES = 9,           /* sequences with such a token */
  RLK_PL_RC_REJECTED_TOKENS = 10,    /* of those, rejected */
  RLK_PL_RC_REJECTED_SEQUENCES = 11, /* sequences with a rejected token */
  RLK_PL_RC_WEIGHT_SUM = 12,         /* the weight exp(clamp(d, +-20)) before any threshold, per token */
  RLK_PL_RC_WEIGHT_HIGH = 13,        /* weights above the upper threshold (tokens, or sequences at those levels) */
  RLK_PL_RC_WEIGHT_LOW = 14,         /* below the lower threshold */
  RLK_PL_RC_CLAMPED_SUM = 15,        /* the weight clamped to [lower, upper], per token */
  RLK_PL_RC_CLAMPED_SQ_SUM = 16,     /* its square */
  RLK_PL_RC_NORM_SUM = 17,           /* the weights the loss applies, before normalisation (tokens, or sequences) */
  RLK_PL_RC_NORM_COUNT = 18,         /* how many */
  RLK_PL_RC_KL_SUM = 19,             /* rollout - prox (k1 of KL(rollout || prox)) */
  RLK_PL_RC_K3_SUM = 20,             /* exp(d) - d - 1 */
  RLK_PL_RC_CHI2_TOKEN_SUM = 21,     /* exp(2 clamp(d, +-20)) */
  RLK_PL_RC_CHI2_SEQ_SUM = 22,       /* per sequence, exp(2 clamp(sum d, +-20)) */
  RLK_PL_RATIO_MIN = 23,
  RLK_PL_RC_WEIGHT_MIN = 24,
  RLK_PL_RATIO_MAX = 25,
  RLK_PL_RC_WEIGHT_MAX = 26,
  RLK_PL_DENOMINATOR = 27,
  RLK_PL_RC_NORMALIZER = 28, /* the mean the weights were divided by (1: none) */
  RLK_PL_STATS = 29          /* the length (PolicyLoss.STATS_LENGTH) */
};
/* Where each kind of stats slot begins: sums before RLK_PLS_FIRST_MIN, minima before
   RLK_PLS_FIRST_MAX, maxima before RLK_PLS_FIRST_SET, then values (PolicyLoss.Stats.merge). */
enum rlk_policy_stat_section { RLK_PLS_FIRST_MIN = 23, RLK_PLS_FIRST_MAX = 25, RLK_PLS_FIRST_SET = 27 };
/* Tokens per segment when the policy loss needs no sequences (token ratio, token-mean). */
#define RLK_PL_CHUNK 4096

/* The interface version of librlkernels.so (rlk_abi_version): bumped when a signature changes. */
#define RLK_ABI_VERSION 6

/* ---- launch constants the Java launch shapes and the CUDA kernels both rely on ---- */
#define RLK_WARP 32          /* threads of a warp: warp-per-item kernels take blockDim / RLK_WARP items a block */
#define RLK_MAX_THREADS 1024 /* __launch_bounds__ of the generic kernels: no launch shape exceeds it */
#define RLK_VECTOR_BYTES 16  /* the log-probs kernels' vector loads: the vector path needs this alignment */
#define RLK_PL_THREADS 256   /* threads of rlk_policy_loss (its __launch_bounds__, for f64 in registers) */
#define RLK_GAE_ITEMS 8      /* positions a thread scans in one tile of rlk_gae */
#define RLK_MM_TILE 16       /* rlk_matmul: RLK_MM_TILE^2 threads per tile of C */

/* BGPO's f64 running state, slot by slot, in the order of Bgpo.Stats's components. */
enum rlk_bgpo_stat {
  RLK_BGPO_LOSS = 0,
  RLK_BGPO_SEEN = 1,
  RLK_BGPO_CLIP_HIGH = 2,
  RLK_BGPO_CLIP_LOW = 3,
  RLK_BGPO_CLIP_DUAL = 4,
  RLK_BGPO_EMPTY = 5,
  RLK_BGPO_D_SUM = 6,
  RLK_BGPO_D_MIN = 7,
  RLK_BGPO_D_MAX = 8,
  RLK_BGPO_PSI_SUM = 9,
  RLK_BGPO_STATS = 10 /* the length (Bgpo.STATS_LENGTH) */
};

#endif
