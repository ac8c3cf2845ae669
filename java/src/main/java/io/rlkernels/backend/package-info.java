/**
 * Where the ops run: {@link io.rlkernels.backend.Backend} (every op, allocation-free and
 * allocating forms), {@link io.rlkernels.backend.Backends} ({@code auto()}: cuda, else native,
 * else the reference, with a log line saying why), {@link io.rlkernels.backend.BgpoAccumulator}
 * (BGPO one Monte Carlo sample at a time, memory flat in n_t) and
 * {@link io.rlkernels.backend.AdvantageEstimators} (verl's estimators by name). Run the JVM with
 * {@code --enable-native-access=ALL-UNNAMED} (module path: {@code =io.rlkernels}).
 */
package io.rlkernels.backend;
