#!/usr/bin/env bash
# Bootstraps sbt from Maven Central (no system sbt needed) and runs it.
# The launcher jar is fetched once with Maven into ~/.m2 and checked against its published SHA-1;
# sbt itself and every plugin then resolve from Maven Central only (see project/repositories).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's/^sbt.version=//p' "$here/project/build.properties")"
jar="$HOME/.m2/repository/org/scala-sbt/sbt-launch/$version/sbt-launch-$version.jar"
if [[ ! -f "$jar" ]]; then
  echo "[sbt] fetching org.scala-sbt:sbt-launch:$version from Maven Central" >&2
  mvn -q -B dependency:get -Dartifact="org.scala-sbt:sbt-launch:$version" -Dtransitive=false >&2
fi
exec java -Xms512m -Xmx4g -Xss4m \
  -Dsbt.repository.config="$here/project/repositories" -Dsbt.override.build.repos=true \
  -Dsbt.log.noformat="${SBT_NOFORMAT:-false}" -Dsbt.supershell=false -Dsbt.server.forcestart=false \
  -jar "$jar" "$@"
