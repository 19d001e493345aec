#!/usr/bin/env bash
# Build the local systemd base images used by the Molecule scenarios:
#
#   hardenkit-base:debian12   (Debian 12 bookworm)
#   hardenkit-base:debian13   (Debian 13 trixie)
#
# No registry is needed: each image is a `debootstrap --variant=minbase`
# rootfs, configured for systemd-in-Docker and loaded with `docker import`.
#
# Usage: scripts/build-images.sh [-f|--force] [-n|--check] [debian12] [debian13]
#   no image names = all images (molecule/resources/images/*.conf), built in
#   parallel, one log per image. -f rebuilds even if the recipe is unchanged;
#   -n only reports, exit status 1 if any selected image would be (re)built.
#
# The recipe (this script + molecule/resources/images/* except *.md and the
# other images' .conf + the mirror URLs) is hashed; the hash is stored in the
# image label "hardenkit.recipe". An image is rebuilt only if it is missing or
# its label differs from the current hash.
#
# Environment (optional):
#   HARDENKIT_DEBIAN_MIRROR           default http://deb.debian.org/debian
#   HARDENKIT_DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#   HARDENKIT_IMAGES_LOG_DIR          default /var/tmp/hardenkit-images-logs
#   HARDENKIT_IMAGES_TMPDIR           default /var/tmp (debootstrap rootfs, removed after)
#   HARDENKIT_IMAGE_REPO              default hardenkit-base
set -euo pipefail

script_path="$(readlink -f "${BASH_SOURCE[0]}")"
script_dir="$(dirname "$script_path")"
repo_root="$(dirname "$script_dir")"
res_rel="molecule/resources/images"
res_dir="$repo_root/$res_rel"

mirror="${HARDENKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mirror="${mirror%/}"
sec_mirror="${HARDENKIT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
sec_mirror="${sec_mirror%/}"
log_dir="${HARDENKIT_IMAGES_LOG_DIR:-/var/tmp/hardenkit-images-logs}"
tmp_base="${HARDENKIT_IMAGES_TMPDIR:-/var/tmp}"
image_repo="${HARDENKIT_IMAGE_REPO:-hardenkit-base}"

msg() { printf 'build-images: %s\n' "$*" >&2; }
die() { msg "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$script_path"
}

# --- helpers ------------------------------------------------------------------

# conf_get KEY FILE: value of "KEY=value" (first match, no shell evaluation).
conf_get() {
    local key="$1" file="$2" line
    line="$(grep -m1 -E "^[[:space:]]*${key}[[:space:]]*=" "$file" || true)"
    line="${line#*=}"
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    printf '%s' "$line"
}

# list_file FILE: entries of a one-per-line list, comments and blanks dropped.
list_file() {
    sed -e 's/#.*//' -e 's/[[:space:]]\+$//' -e 's/^[[:space:]]\+//' "$1" | grep -v '^$' || true
}

# recipe_hash NAME: sha256 over every input of image NAME: this script, every
# file below molecule/resources/images/ (recursively, incl. the rootfs/
# overlay) except *.md and the other images' top-level .conf, and the mirrors.
recipe_hash() {
    local name="$1" rel
    local -a inputs=("scripts/$(basename "$script_path")")
    while IFS= read -r rel; do
        case "$rel" in
            *.md) continue ;;
            */*) ;;
            *.conf) [[ "$rel" == "$name.conf" ]] || continue ;;
        esac
        inputs+=("$res_rel/$rel")
    done < <(cd "$res_dir" && find . -type f -printf '%P\n' | LC_ALL=C sort)
    {
        (cd "$repo_root" && sha256sum "${inputs[@]}")
        printf 'mirror=%s\nsecurity=%s\n' "$mirror" "$sec_mirror"
    } | sha256sum | cut -c1-64
}

image_label() { # image_label IMAGE -> recipe label or empty
    docker image inspect -f '{{ index .Config.Labels "hardenkit.recipe" }}' "$1" 2>/dev/null || true
}

# Unmount anything still mounted below $1 (deepest first), e.g. after an
# interrupted debootstrap, so that rm -rf never walks into /proc or /sys.
umount_below() {
    local root="$1" m
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# build_cleanup TMPDIR TMPTAG: EXIT trap of build_one.
build_cleanup() {
    umount_below "$1"
    rm -rf --one-file-system "$1" 2>/dev/null || { sleep 2; rm -rf --one-file-system "$1"; } || true
    docker rmi "$2" >/dev/null 2>&1 || true
}

# --- one image (runs in a background subshell, output goes to its log) ---------
build_one() {
    local name="$1" hash="$2"
    local conf="$res_dir/$name.conf" image="$image_repo:$name"
    local suite cmd keyring pkgs unit tmp rootfs t0 old_id new_id tmp_tag
    local -a packages masks extra

    t0=$SECONDS
    suite="$(conf_get suite "$conf")"
    cmd="$(conf_get cmd "$conf")"
    [[ -n "$suite" ]] || die "$conf: no suite="
    [[ -n "$cmd" ]] || cmd='["/lib/systemd/systemd"]'
    mapfile -t packages < <(list_file "$res_dir/packages.txt")
    # The .conf's own lists are space separated: words, never glob patterns.
    read -ra extra <<<"$(conf_get packages "$conf")"
    packages+=("${extra[@]}")
    mapfile -t masks < <(list_file "$res_dir/masked-units.txt")
    read -ra extra <<<"$(conf_get mask "$conf")"
    masks+=("${extra[@]}")
    pkgs="$(IFS=,; printf '%s' "${packages[*]}")"

    tmp="$(mktemp -d "$tmp_base/hardenkit-$name.XXXXXX")"
    rootfs="$tmp/rootfs"
    tmp_tag="$image_repo-import:$name-$$"
    # The EXIT trap runs after build_one has returned and its locals are gone: it reads
    # globals, which are this image's own (build_one runs in a subshell per image).
    cleanup_dir="$tmp" cleanup_tag="$tmp_tag"
    trap 'build_cleanup "$cleanup_dir" "$cleanup_tag"' EXIT
    # Aborted by the main script (TERM sent to this job's whole process group):
    # give the other members of the group (debootstrap, dpkg, tar) a moment
    # to die before the EXIT trap removes the rootfs under their feet.
    trap 'msg "[$name] aborted"; sleep 1; exit 143' TERM INT

    msg "[$name] $(date -u +%FT%TZ) recipe $hash"
    msg "[$name] debootstrap $suite from $mirror (+ $pkgs)"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    debootstrap --variant=minbase --components=main --include="$pkgs" \
        --keyring="$keyring" "$suite" "$rootfs" "$mirror"

    msg "[$name] configuring rootfs"
    # apt sources (deb822): release, -updates, -security.
    rm -f "$rootfs/etc/apt/sources.list"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -e "$rootfs$keyring" ]] || keyring=/usr/share/keyrings/debian-archive-keyring.pgp
    [[ -e "$rootfs$keyring" ]] || die "[$name] no debian-archive-keyring in rootfs"
    mkdir -p "$rootfs/etc/apt/sources.list.d"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: $keyring

Types: deb
URIs: $sec_mirror
Suites: $suite-security
Components: main
Signed-By: $keyring
EOF

    # Empty machine-id: systemd generates a fresh one at every container boot.
    : >"$rootfs/etc/machine-id"
    rm -f "$rootfs/var/lib/dbus/machine-id"

    # Mask units that cannot work or only waste time in a container.
    for unit in "${masks[@]}"; do
        ln -sfn /dev/null "$rootfs/etc/systemd/system/$unit"
    done

    # Files from molecule/resources/images/rootfs/ (apt config, /etc/hosts),
    # root-owned, 0644 (0755 if executable in the repo).
    if [[ -d "$res_dir/rootfs" ]]; then
        local rel mode
        while IFS= read -r rel; do
            mode=0644
            [[ -x "$res_dir/rootfs/$rel" ]] && mode=0755
            install -D -o 0 -g 0 -m "$mode" "$res_dir/rootfs/$rel" "$rootfs/$rel"
        done < <(cd "$res_dir/rootfs" && find . -type f -printf '%P\n')
    fi

    # Docker bind-mounts its own hostname/hosts/resolv.conf at run time; do
    # not ship the build host's copies.
    printf 'localhost\n' >"$rootfs/etc/hostname"

    msg "[$name] apt-get update (package lists are kept in the image)"
    mount -t proc proc "$rootfs/proc"
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q update
    chroot "$rootfs" apt-get clean
    umount "$rootfs/proc"
    : >"$rootfs/etc/resolv.conf"
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/apt/* \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
        "$rootfs"/tmp/* "$rootfs"/var/tmp/*
    : >"$rootfs/var/log/dpkg.log"
    find "$rootfs/var/cache/apt/archives" -name '*.deb' -delete

    msg "[$name] docker import + metadata -> $image"
    old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    tar --numeric-owner --xattrs -C "$rootfs" -c . |
        docker import \
            --change "CMD $cmd" \
            --change 'ENV container=docker' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$tmp_tag" >/dev/null
    # `docker import --change` rejects STOPSIGNAL on this engine, so the rest of
    # the config is added by a metadata-only build FROM the local import (no
    # registry access). SIGRTMIN+3 makes `docker stop` a clean systemd halt in
    # ~0.3 s instead of a 10 s timeout + SIGKILL. The recipe label is set last:
    # a half-built image never looks up to date.
    DOCKER_BUILDKIT=0 docker build -q -t "$image" - >/dev/null <<EOF
FROM $tmp_tag
STOPSIGNAL SIGRTMIN+3
LABEL hardenkit.suite="$suite" hardenkit.mirror="$mirror" hardenkit.recipe="$hash"
EOF
    docker rmi "$tmp_tag" >/dev/null
    new_id="$(docker image inspect -f '{{.Id}}' "$image")"
    if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
        docker rmi "$old_id" >/dev/null 2>&1 ||
            msg "[$name] note: old image $old_id still in use, not removed"
    fi
    msg "[$name] done in $((SECONDS - t0))s: $image ($new_id)"
}

# --- main -----------------------------------------------------------------------
force=0
check=0
declare -a want=()
while (($#)); do
    case "$1" in
        -f | --force) force=1 ;;
        -n | --check) check=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) want+=("$1") ;;
    esac
    shift
done

if ((${#want[@]} == 0)); then
    for f in "$res_dir"/*.conf; do
        want+=("$(basename "$f" .conf)")
    done
fi
for name in "${want[@]}"; do
    [[ -f "$res_dir/$name.conf" ]] || die "unknown image '$name' (no $res_rel/$name.conf)"
done

"$script_dir/docker-up.sh"

declare -a todo=()
declare -A hashes=()
for name in "${want[@]}"; do
    hashes[$name]="$(recipe_hash "$name")"
    current="$(image_label "$image_repo:$name")"
    if ((force == 0)) && [[ "$current" == "${hashes[$name]}" ]]; then
        msg "$image_repo:$name is up to date (recipe ${hashes[$name]:0:12}), skipping"
    else
        if [[ -z "$current" ]]; then
            msg "$image_repo:$name missing: will build"
        elif ((force)); then
            msg "$image_repo:$name: --force: will rebuild"
        else
            msg "$image_repo:$name recipe changed (${current:0:12} -> ${hashes[$name]:0:12}): will rebuild"
        fi
        todo+=("$name")
    fi
done
((${#todo[@]})) || exit 0
((check == 0)) || exit 1

[[ "$(id -u)" -eq 0 ]] || die "building images needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install debootstrap)"
mkdir -p "$log_dir" "$tmp_base"

# One build lock, so two concurrent invocations do not race on the same tag.
exec 9>"$tmp_base/hardenkit-build-images.lock"
if ! flock -n 9; then
    msg "another build-images.sh is running; waiting for it"
    flock 9
fi

declare -A pids=()
# On Ctrl-C / CI cancel stop the builds. Each build runs as its own process
# group (set -m below), so one kill reaches everything it started, including
# processes debootstrap leaves behind; the build's TERM/EXIT traps then
# unmount and remove its rootfs and temporary image.
cleanup_jobs() {
    local p
    msg "interrupted: stopping builds"
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    wait || true
}
trap 'cleanup_jobs; exit 130' INT TERM

t_start=$SECONDS
set -m # background jobs get their own process group (pgid = job pid)
for name in "${todo[@]}"; do
    logf="$log_dir/$name.log"
    msg "building $image_repo:$name in the background (log: $logf)"
    (build_one "$name" "${hashes[$name]}") </dev/null >"$logf" 2>&1 &
    pids[$name]=$!
done
set +m

failed=()
for name in "${todo[@]}"; do
    if wait "${pids[$name]}"; then
        msg "$image_repo:$name OK ($(grep -o 'done in [0-9]*s' "$log_dir/$name.log" | tail -n1 || true))"
    else
        failed+=("$name")
    fi
done
trap - INT TERM

if ((${#failed[@]})); then
    for name in "${failed[@]}"; do
        msg "FAILED: $image_repo:$name -- last lines of $log_dir/$name.log:"
        tail -n 40 "$log_dir/$name.log" >&2 || true
    done
    die "failed image(s): ${failed[*]}"
fi
msg "all done in $((SECONDS - t_start))s"
docker images "$image_repo" >&2
