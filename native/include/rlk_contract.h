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
enum rlk_adv_mode { RLK_ADV_GRPO = 0, RLK_ADV_DRGRPO = 1, RLK_ADV_RLOO = 2, RLK_ADV_BATCH = 3, RLK_ADV_NONE = 4 };

/* Policy loss (io.rlkernels.ops.PolicyLoss): loss type, ratio level, aggregation, KL estimator. */
enum rlk_loss_type { RLK_LOSS_PPO = 0, RLK_LOSS_CISPO = 1, RLK_LOSS_REINFORCE = 2 };
enum rlk_ratio_level { RLK_RATIO_TOKEN = 0, RLK_RATIO_SEQUENCE = 1 };
enum rlk_aggregation {
  RLK_AGG_TOKEN_MEAN = 0,
  RLK_AGG_SEQ_MEAN_TOKEN_MEAN = 1,
  RLK_AGG_SEQ_MEAN_TOKEN_SUM = 2,
  RLK_AGG_SEQ_MEAN_TOKEN_SUM_NORM = 3
};
/* The KL estimators; the _PLUS ones are verl's straight-through "k1+" and "k3+": k1's or k3's
   value, k2's gradient (logp - ref). */
enum rlk_kl { RLK_KL_NONE = 0, RLK_KL_K1 = 1, RLK_KL_K2 = 2, RLK_KL_K3 = 3, RLK_KL_ABS = 4, RLK_KL_K1_PLUS = 5, RLK_KL_K3_PLUS = 6 };

/* The policy loss's f64 stats, slot by slot, in the order of PolicyLoss.Stats's components. */
enum rlk_policy_stat {
  RLK_PL_LOSS = 0,
  RLK_PL_TOKENS = 1,
  RLK_PL_SEQUENCES = 2,
  RLK_PL_CLIP_HIGH = 3,
  RLK_PL_CLIP_LOW = 4,
  RLK_PL_CLIP_DUAL = 5,
  RLK_PL_NEG_APPROX_KL_SUM = 6, /* sum of old - logp */
  RLK_PL_RATIO_SUM = 7,
  RLK_PL_RATIO_MIN = 8,
  RLK_PL_RATIO_MAX = 9,
  RLK_PL_DENOMINATOR = 10,
  RLK_PL_STATS = 11 /* the length (PolicyLoss.STATS_LENGTH) */
};
/* Tokens per segment when the policy loss needs no sequences (token ratio, token-mean). */
#define RLK_PL_CHUNK 4096

/* The interface version of librlkernels.so (rlk_abi_version): bumped when a signature changes. */
#define RLK_ABI_VERSION 4

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
