# shellcheck shell=bash
# Sourced by the build scripts: the Debian archive and security URIs come from this machine's own
# apt sources (deb822 `.sources` files and one-line `sources.list` entries), so a user behind a
# proxy or a private mirror edits nothing here. Override with HTTPD_OPERATOR_DEBIAN_URI and
# HTTPD_OPERATOR_DEBIAN_SECURITY_URI.
#
#   debian_uri SUITE        the first URI the machine uses for SUITE (bookworm, bookworm-security)
#   debian_sources TYPES    a deb822 list (TYPES: "deb" or "deb-src") for bookworm,
#                           bookworm-updates and bookworm-security, from those URIs

_debian_source_files() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] && printf '%s\n' "$f"
    done
    return 0
}

debian_uri() {  # SUITE
    local suite=$1 f
    case $suite in
        *-security) [[ -n ${HTTPD_OPERATOR_DEBIAN_SECURITY_URI:-} ]] && { echo "$HTTPD_OPERATOR_DEBIAN_SECURITY_URI"; return; } ;;
        *) [[ -n ${HTTPD_OPERATOR_DEBIAN_URI:-} ]] && { echo "$HTTPD_OPERATOR_DEBIAN_URI"; return; } ;;
    esac
    while read -r f; do
        if [[ $f == *.sources ]]; then
            # stanzas separated by blank lines: the URIs of one whose Suites name SUITE
            awk -v suite="$suite" '
                function flush() { if (found && uris != "") { print uris; exit } found = 0; uris = "" }
                /^[[:space:]]*$/ { flush(); next }
                /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); split($0, u, /[[:space:]]+/); uris = u[1] }
                /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
                END { flush() }' "$f"
        else
            # deb [options] URI SUITE COMPONENTS...
            awk -v suite="$suite" '$1 == "deb" || $1 == "deb-src" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit } }' "$f"
        fi
    done < <(_debian_source_files) | head -n 1 | grep . && return 0
    echo "no apt source for Debian suite $suite on this machine: set HTTPD_OPERATOR_DEBIAN_$([[ $suite == *-security ]] && echo SECURITY_)URI" >&2
    return 1
}

debian_sources() {  # TYPES
    local main security
    main=$(debian_uri bookworm) && security=$(debian_uri bookworm-security) || return 1
    cat <<SRC
Types: $1
URIs: $main
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: $1
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}
