# shellcheck shell=bash
# Sourced by hack/httpd-image and hack/images: podman on a machine without Docker and without a
# registry. Everything (podman storage, base root filesystems, apt state) lives in the cache,
# outside the repository; nothing under /etc is changed.
#
#   setup_podman             private podman configuration; exports CONTAINERS_CONF/_STORAGE_CONF
#   make_base REF ROOTFS [PKG,...]  a Debian bookworm base image from debootstrap (minbase,
#                            trimmed as the official -slim images are), imported as REF
#   resolve_debs LIST OUT ROOTFS    download the .debs LIST names (and what they need beyond
#                            ROOTFS's dpkg status) into OUT, with apt state of our own
#   image_size REF           the image's size in MB, as podman reports it
HACK_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=debian-sources.sh
source "$HACK_LIB/debian-sources.sh"
IMAGES_CACHE=${HTTPD_OPERATOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/httpd-operator}/httpd
PODMAN_DIR="$IMAGES_CACHE/podman"

# runc (crun fails on this kernel's hybrid cgroups), limits root may set here (it lacks
# CAP_SYS_RESOURCE), storage in the cache.
setup_podman() {
    local pdir=$PODMAN_DIR
    mkdir -p "$pdir"
    # runroot and tmp_dir hold state that must not outlive a reboot (/run is no tmpfs here)
    local boot; boot=$(cat /proc/sys/kernel/random/boot_id)
    if [[ "$(cat "$pdir/boot_id" 2>/dev/null)" != "$boot" ]]; then
        rm -rf "$pdir/run" "$pdir/tmp"
        echo "$boot" >"$pdir/boot_id"
    fi
    mkdir -p "$pdir/run" "$pdir/tmp" "$pdir/cni"
    local nofile; nofile=$(ulimit -Hn)
    cat >"$pdir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$pdir/tmp"
volume_path = "$pdir/volumes"

[network]
network_config_dir = "$pdir/cni"
CONF
    cat >"$pdir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$pdir/storage"
runroot = "$pdir/run"
CONF
    export CONTAINERS_CONF="$pdir/containers.conf" CONTAINERS_STORAGE_CONF="$pdir/storage.conf"
}

make_base() {  # REF ROOTFS [PKG,...]
    local ref=$1 rootfs=$2 include=${3:-} mirror
    if podman image exists "$ref"; then return; fi
    if [[ ! -e "$rootfs/.done" ]]; then
        rm -rf "$rootfs"
        mirror=$(debian_uri bookworm)
        echo "images: debootstrap into $rootfs (from $mirror)" >&2
        debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$rootfs" "$mirror" >&2
        cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
CFG
        find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
        rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,locale}/* \
            "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
        touch "$rootfs/.done"
    fi
    tar --numeric-owner --exclude=./.done -C "$rootfs" -c . |
        podman import --change 'CMD ["/bin/bash"]' - "$ref" >&2
}

resolve_debs() {  # LISTFILE OUTDIR ROOTFS
    local apt="$IMAGES_CACHE/apt"
    mkdir -p "$apt/sources.d" "$apt/lists/partial" "$2/partial"
    debian_sources deb >"$apt/sources.d/debian.sources"
    local opts=(-q -o Dir::Etc::SourceParts="$apt/sources.d" -o Dir::Etc::SourceList=/dev/null
        -o Dir::State::Lists="$apt/lists" -o Dir::State::status="$3/var/lib/dpkg/status"
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Dir::Cache::archives="$2"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    if [[ ! -e "$apt/updated" ]] || [[ -n "$(find "$apt/updated" -mmin +720)" ]] \
        || ! cmp -s "$apt/sources.d/debian.sources" "$apt/updated"; then
        apt-get "${opts[@]}" update >&2
        cp "$apt/sources.d/debian.sources" "$apt/updated"
    fi
    grep -v '^#' "$1" | grep . | xargs apt-get "${opts[@]}" install -y --download-only \
        --no-install-recommends >&2
    rm -rf "$2/partial" "$2/lock"
}

image_size() {  # REF
    podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'
}
