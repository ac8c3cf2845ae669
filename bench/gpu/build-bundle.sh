#!/usr/bin/env bash
# build-bundle.sh — builds bench/gpu/dist/rlkernels-gpu-bundle.tar.xz: everything a GPU machine
# with an NVIDIA driver (and optionally PyTorch and the CUDA toolkit) needs to run the test suite
# on the cuda backend, compute-sanitizer and the GPU benchmarks, without Java, Maven or a network.
# Runs here, on a Linux x86-64 machine with a JDK 22+ (25 preferred), Maven and, for the kernels, nvcc.
#
#   bench/gpu/build-bundle.sh [--skip-build] [--allow-no-kernels]
#
#   --skip-build        reuse java/target and bench/target as they are (no mvn package)
#   --allow-no-kernels  build the bundle even if the jar holds no rlkernels.fatbin (nvcc was absent)
#
# The bundle (one folder, rlkernels-gpu-bundle/):
#   run.sh, README.md            the command to run there, and how (bench/gpu/README.md)
#   jre/                         a jlink'd JRE of this JDK: java.base, java.logging, java.xml, jdk.zipfs
#   lib/                         rlkernels-<version>.jar, rlkernels-cli-<version>.jar and their runtime dependencies (JCuda, picocli)
#   test/                        the tests jar, junit-platform-console-standalone, other test-only dependencies
#   bench/                       rlkernels-bench-<version>.jar (GpuLogProbsBench), bench_torch.py, report.py
#   native-fallback/libgomp.so.1 used only where the machine has no libgomp (the native backend links it)
#   BUILD-INFO.txt               commit, date, JDK, nvcc, modules
set -euo pipefail

gpu="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$gpu/../.." && pwd)"
source "$root/bin/lib/jdk.sh" # JAVA_HOME: a JDK 22+; MAVEN_OPTS

skip_build=0
allow_no_kernels=0
for a in "$@"; do
  case "$a" in
    --skip-build) skip_build=1 ;;
    --allow-no-kernels) allow_no_kernels=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-bundle.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

# The smallest module set that runs the whole suite, the CLI and GpuLogProbsBench (checked by
# running them on a JRE of these modules; without jdk.zipfs the console launcher finds no tests in
# the tests jar, without java.xml it cannot write its XML reports).
MODULES="java.base,java.logging,java.xml,jdk.zipfs${RLK_JLINK_EXTRA_MODULES:+,$RLK_JLINK_EXTRA_MODULES}"
LIMIT_MIB=60
NAME=rlkernels-gpu-bundle
dist="$gpu/dist"
stage="$dist/$NAME"
mvn=(maven -B -ntp -q -f "$root/pom.xml")

maven() { mvn "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'; } # Maven 3.8 prints colour codes even with -B -q

if [ "$(uname -m)" != x86_64 ]; then
  echo "build-bundle.sh: the bundle's JRE is this JDK's platform; build it on x86-64 Linux (this is $(uname -m))" >&2
  exit 1
fi
echo "build-bundle.sh: JDK $JAVA_HOME ($("$JAVA_HOME/bin/java" -version 2>&1 | head -n1))"

if [ "$skip_build" = 0 ]; then
  echo "build-bundle.sh: mvn package -DskipTests (library, tests jar, benchmarks)"
  "${mvn[@]}" package -DskipTests
fi

version="$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$root/pom.xml" | head -n1)"
lib_jar="$root/java/target/rlkernels-$version.jar"
cli_jar="$root/cli/target/rlkernels-cli-$version.jar"
tests_jar="$root/java/target/rlkernels-$version-tests.jar"
bench_jar="$root/bench/target/rlkernels-bench-$version.jar"
for f in "$lib_jar" "$cli_jar" "$tests_jar" "$bench_jar"; do
  [ -f "$f" ] || { echo "build-bundle.sh: $f is missing (run without --skip-build)" >&2; exit 1; }
done
if ! "$JAVA_HOME/bin/jar" tf "$lib_jar" | grep -q 'io/rlkernels/cuda/rlkernels.fatbin'; then
  if [ "$allow_no_kernels" = 0 ]; then
    echo "build-bundle.sh: $lib_jar holds no rlkernels.fatbin (nvcc was not found at build time):" >&2
    echo "  the cuda backend would have no kernels. Install nvcc, or pass --allow-no-kernels." >&2
    exit 1
  fi
  echo "build-bundle.sh: warning: no rlkernels.fatbin in the jar; the cuda backend will say so"
fi

rm -rf "$stage" "$dist/$NAME.tar.xz"
mkdir -p "$stage/lib" "$stage/test/lib" "$stage/bench" "$stage/native-fallback"

# The library and its runtime dependencies (java/target/lib, copied there by the java module's package
# phase); the command line for rlkernels info, with picocli (not the trainer's plot and progress bar).
cp "$lib_jar" "$cli_jar" "$stage/lib/"
cp "$root"/java/target/lib/*.jar "$root"/cli/target/lib/picocli-*.jar "$stage/lib/"
cp "$tests_jar" "$stage/test/"
cp "$bench_jar" "$stage/bench/"

# The JUnit Platform console launcher of the BOM's version (JUnit 5.x.y ships platform 1.x.y).
junit="$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' "$root/pom.xml" | head -n1)"
platform="1.${junit#5.}"
echo "build-bundle.sh: junit-platform-console-standalone $platform (JUnit $junit)"
"${mvn[@]}" -N dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$platform" \
  -DoutputDirectory="$stage/test"

# Test-scope dependencies other than JUnit itself: the standalone launcher already holds Jupiter's
# api, params and engine, opentest4j and apiguardian, and a second copy of an engine on the class
# path would be a second engine with the same id.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${mvn[@]}" -pl java dependency:copy-dependencies -DincludeScope=test -DoutputDirectory="$tmp/test-deps" \
  -DexcludeGroupIds=org.junit.jupiter,org.junit.platform,org.junit.vintage,org.opentest4j,org.apiguardian
for f in "$tmp"/test-deps/*.jar; do
  [ -e "$f" ] || continue
  [ -e "$stage/lib/$(basename "$f")" ] || cp "$f" "$stage/test/lib/"
done

# libgomp.so.1 from this machine: run.sh puts it on LD_LIBRARY_PATH only where the GPU machine has none.
gomp="$(gcc -print-file-name=libgomp.so.1 2>/dev/null || true)"
if [ -z "$gomp" ] || [ ! -e "$gomp" ] || [ "$gomp" = libgomp.so.1 ]; then
  gomp="$(ls /usr/lib/x86_64-linux-gnu/libgomp.so.1 /lib/x86_64-linux-gnu/libgomp.so.1 /usr/lib64/libgomp.so.1 2>/dev/null | head -n1 || true)"
fi
if [ -n "$gomp" ] && [ -e "$gomp" ]; then
  cp -L "$gomp" "$stage/native-fallback/libgomp.so.1"
else
  echo "build-bundle.sh: warning: libgomp.so.1 not found here; the bundle carries no fallback"
fi

# The JRE. zip-0: the modules file stays uncompressed so that xz compresses it (12.9 MB in the
# .tar.xz against 19.1 MB for --compress=zip-9, measured with JDK 25).
echo "build-bundle.sh: jlink $MODULES"
"$JAVA_HOME/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages --compress=zip-0 \
  --output "$stage/jre"

cp "$gpu/run.sh" "$gpu/README.md" "$stage/"
cp "$gpu/bench_torch.py" "$gpu/report.py" "$stage/bench/"
chmod +x "$stage/run.sh" "$stage/bench/bench_torch.py" "$stage/bench/report.py"

commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then commit="$commit+uncommitted"; fi
nvcc_version="$( (command -v nvcc >/dev/null && nvcc --version | grep -o 'release [0-9.]*, V[0-9.]*') || echo "not found")"
{
  echo "rlkernels $version GPU bundle, built $(date -u '+%Y-%m-%d %H:%M UTC') from commit $commit"
  echo "commit: $commit"
  echo "jdk: $("$JAVA_HOME/bin/java" -version 2>&1 | sed -n 2p)"
  echo "jre_modules: $MODULES"
  echo "nvcc: $nvcc_version"
  echo "fatbin: $("$JAVA_HOME/bin/jar" tf "$lib_jar" | grep -c 'rlkernels.fatbin') in the jar"
  echo "junit_platform: $platform"
  echo "files:"
  (cd "$stage" && find . -type f ! -path './jre/*' | sort | sed 's/^/  /')
} > "$stage/BUILD-INFO.txt"

echo "build-bundle.sh: xz"
tar -C "$dist" --owner=0 --group=0 -cf - "$NAME" | xz -9 -T0 > "$dist/$NAME.tar.xz"
bytes="$(stat -c %s "$dist/$NAME.tar.xz")"
unpacked="$(du -sm "$stage" | cut -f1)"
rm -rf "$stage"
mib="$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')"
echo "build-bundle.sh: $dist/$NAME.tar.xz: $mib MiB ($bytes bytes; $unpacked MiB unpacked)"
if [ "$bytes" -ge $((LIMIT_MIB * 1048576)) ]; then
  echo "build-bundle.sh: the bundle is over the $LIMIT_MIB MiB limit" >&2
  exit 1
fi
echo "build-bundle.sh: copy it to the GPU machine, then: tar -xJf $NAME.tar.xz && cd $NAME && ./run.sh"
