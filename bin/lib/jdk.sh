# jdk.sh — sourced by bin/ scripts and .ci/run: sets JAVA_HOME to a JDK 22 or newer, looking at
# JAVA_HOME, then the java on PATH, then the usual JDK folders; says what is missing otherwise.

java_version() { # major version of a java binary, or nothing
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p' | head -n1
}

find_jdk() {
  local candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for d in /usr/lib/jvm/* /opt/java/* /opt/jdk* /usr/local/jdk* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/*; do
    [ -d "$d" ] && candidates+=("$d")
  done
  for home in "${candidates[@]}"; do
    if [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ]; then
      local v
      v="$(java_version "$home/bin/java")"
      if [ -n "$v" ] && [ "$v" -ge 22 ]; then
        echo "$home"
        return 0
      fi
    fi
  done
  return 1
}

if ! JAVA_HOME="$(find_jdk)"; then
  echo "rlkernels: no JDK 22 or newer found (looked at JAVA_HOME, PATH and /usr/lib/jvm)." >&2
  echo "Install one (e.g. Temurin 25) and set JAVA_HOME to it." >&2
  exit 1
fi
export JAVA_HOME
# Maven's bundled Guava calls sun.misc.Unsafe; JDK 24+ warns about it on every run.
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"

# The JVM decodes file names and arguments with the locale's character set: under the C or POSIX
# locale a path with a non-ASCII character cannot even be named. Run it in a UTF-8 locale then.
case "$(LC_ALL="${LC_ALL:-}" locale charmap 2>/dev/null)" in
  UTF-8 | utf8) ;;
  *) if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then export LC_ALL=C.UTF-8; fi ;;
esac
