#!/usr/bin/env bash
# Usage: build-httpd.sh SRC_DIR PREFIX
#
# Compiles apr, apr-util and httpd (the versions pinned in SHA256SUMS beside this script)
# from the upstream tarballs in SRC_DIR and installs them, trimmed for a runtime image,
# into PREFIX. The image's build stage and the tests (tests/image) both run this script,
# so the tests exercise the very build the image ships.
set -euo pipefail

src=$(cd "${1:?usage: $0 SRC_DIR PREFIX}" && pwd)
prefix=${2:?usage: $0 SRC_DIR PREFIX}
here=$(cd "$(dirname "$0")" && pwd)

HTTPD_VERSION=2.4.68
APR_VERSION=1.7.2
APR_UTIL_VERSION=1.6.3

# Refuse anything but the pinned tarballs.
(cd "$src" && sha256sum --check --strict "$here/SHA256SUMS")

# Optimised and hardened: -O2, fortify, stack protector and clash protection, CET,
# full RELRO with immediate binding; httpd itself as a PIE (--enable-pie below).
# (Set explicitly: with no CFLAGS apr's build would fall back to -O0/-g.)
export CFLAGS="-O2 -pipe -g0 -fstack-protector-strong -fstack-clash-protection -fcf-protection -D_FORTIFY_SOURCE=2 -Wformat -Werror=format-security"
export LDFLAGS="-Wl,-z,relro -Wl,-z,now"
jobs=$(nproc)

work=$(mktemp -d "${TMPDIR:-/tmp}/build-httpd.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in "httpd-$HTTPD_VERSION.tar.gz" "apr-$APR_VERSION.tar.bz2" "apr-util-$APR_UTIL_VERSION.tar.bz2"; do
    tar -C "$work" -xf "$src/$t"
done

# apr and apr-util go into PREFIX too (classic from-source recipe); httpd finds them
# there at run time through the rpath libtool records.
cd "$work/apr-$APR_VERSION"
./configure --prefix="$prefix" --disable-static
make -j"$jobs"
make install

# apr-util: only what httpd needs (expat, the built-in sdbm); the optional database and
# LDAP drivers are switched off so the result does not depend on what -dev packages
# the building machine happens to have.
cd "$work/apr-util-$APR_UTIL_VERSION"
./configure --prefix="$prefix" --with-apr="$prefix" --with-expat=/usr \
    --without-sqlite3 --without-sqlite2 --without-pgsql --without-mysql --without-odbc \
    --without-oracle --without-freetds --without-ldap --without-berkeley-db \
    --without-gdbm --without-ndbm --without-crypto
make -j"$jobs"
make install

# httpd: every MPM as a loadable module with event as the default; "most" modules as
# shared objects, with the ones the image promises switched on explicitly (configure
# fails if their libraries are missing, instead of dropping them silently) and the ones
# needing libraries we do not ship switched off (same result on every machine).
cd "$work/httpd-$HTTPD_VERSION"
./configure --prefix="$prefix" \
    --with-apr="$prefix/bin/apr-1-config" --with-apr-util="$prefix/bin/apu-1-config" \
    --with-pcre=/usr/bin/pcre2-config \
    --enable-pie --enable-so \
    --enable-mpms-shared=all --with-mpm=event \
    --enable-mods-shared=most \
    --enable-ssl --enable-http2 --enable-rewrite --enable-headers --enable-status \
    --enable-brotli --enable-deflate --enable-remoteip --enable-unixd \
    --disable-lua --disable-md --disable-proxy-html --disable-xml2enc
make -j"$jobs"
make install

# Trim for a runtime image: no manual, headers, build kit, static archives or sample
# content; the image brings its own httpd.conf, htdocs and health check.
cd "$prefix"
rm -rf manual man include build build-1 cgi-bin error icons htdocs/* logs/* \
    lib/*.a lib/*.la lib/*.exp lib/pkgconfig lib/apr-util-1/*.a lib/apr-util-1/*.la \
    bin/apxs bin/apr-1-config bin/apu-1-config bin/envvars-std bin/dbmmanage
find conf -mindepth 1 ! -name mime.types ! -name magic -exec rm -rf {} +
# Stripped binaries: drops symbols we do not ship debug info for anyway.
# (readelf, from binutils, tells ELF files from scripts such as apachectl.)
find bin lib modules -type f -print0 | while IFS= read -r -d '' f; do
    if readelf -h "$f" >/dev/null 2>&1; then strip --strip-unneeded "$f"; fi
done
echo "build-httpd: installed httpd $HTTPD_VERSION (apr $APR_VERSION, apr-util $APR_UTIL_VERSION) in $prefix"
